/**
 * Test helpers for backend authors and engine tests, published as `@backup-manager/core-archive/testing`: an
 * in-memory backend, a fault-injecting wrapper, and the conformance suite every backend must pass (needs vitest).
 */

export { MemoryBackend } from '../backend/memory.ts';
export type { MemoryBackendOptions } from '../backend/memory.ts';
export { FaultyBackend } from './faulty.ts';
export type { FaultOperation, FaultRule, FaultyBackendOptions, FaultyCall } from './faulty.ts';
export { describeBackendConformance } from './conformance.ts';
export type { ConformanceOptions, ConformanceSubject } from './conformance.ts';
export { makeAdversarialTree, compareTrees } from '../test-support/tree.ts';
export type { AdversarialOptions, AdversarialTree, CompareOptions } from '../test-support/tree.ts';
