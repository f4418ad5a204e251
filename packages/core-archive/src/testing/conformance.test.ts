// The conformance suite run on the wrappers, stacked the way the engine stacks them: the wrappers must keep every
// promise of the contract. (LocalBackend and MemoryBackend run it on their own next to their code.)
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { BandwidthLimitBackend, ConnectionLimitBackend } from '../backend/limits.ts';
import { LocalBackend } from '../backend/local.ts';
import { MemoryBackend } from '../backend/memory.ts';
import { RetryBackend } from '../backend/retry.ts';
import { BackupError } from '../errors.ts';
import { describeBackendConformance } from './conformance.ts';
import { FaultyBackend } from './faulty.ts';

describeBackendConformance(
  'LocalBackend behind RetryBackend and ConnectionLimitBackend',
  async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'bam-conformance-'));
    const local = await LocalBackend.create(path.join(dir, 'repo'));
    const backend = new RetryBackend(new ConnectionLimitBackend(local, 4), { sleep: async () => {} });
    return { backend, cleanup: () => rm(dir, { recursive: true, force: true }) };
  },
  { supportsUsage: true },
);

describeBackendConformance(
  'MemoryBackend with random transient faults behind RetryBackend',
  async () => {
    const faulty = new FaultyBackend(new MemoryBackend(), { seed: 7 });
    const transient = () => new BackupError('UNAVAILABLE', 'injected transient failure');
    for (const operation of ['save', 'load', 'stat', 'remove'] as const) {
      faulty.addRule({ operation, probability: 0.15, error: transient });
    }
    // Saves and removals that happen but report failure: the retry must converge all the same.
    faulty.addRule({ operation: 'save', probability: 0.1, applyFirst: true, error: transient });
    faulty.addRule({ operation: 'remove', probability: 0.1, applyFirst: true, error: transient });
    faulty.addRule({ operation: 'list', probability: 0.3, afterItems: 3, error: transient });
    faulty.addRule({
      operation: 'load',
      probability: 0.05,
      error: () => new BackupError('RATE_LIMITED', 'injected 429', { retryAfterMs: 1 }),
    });
    const backend = new RetryBackend(faulty, { maxAttempts: 30, sleep: async () => {} });
    return { backend };
  },
  { supportsUsage: true },
);

describeBackendConformance(
  'MemoryBackend behind BandwidthLimitBackend and ConnectionLimitBackend',
  async () => {
    const limited = new ConnectionLimitBackend(new MemoryBackend(), 2);
    const backend = new BandwidthLimitBackend(limited, {
      uploadBytesPerSecond: 1024 ** 4,
      downloadBytesPerSecond: 1024 ** 4,
    });
    return { backend };
  },
  { supportsUsage: true },
);
