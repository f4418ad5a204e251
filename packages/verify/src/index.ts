/**
 * @backup-manager/verify: proves that backups can be restored. Structure and data checks of a repository with typed
 * findings that name the snapshots and files at risk, rotating data verification, recovery tests (restore and
 * check), comparison with the live source, repair of the index and of snapshots, cross-destination consistency,
 * and the verification history.
 */
export { checkRepository, sourceKey, verifyRepository } from './check.ts';
export { startVerifyPool } from './pool.ts';
export type { VerifyPool } from './pool.ts';
export type { CheckOptions } from './check.ts';
export { FINDING_KINDS, NOTE_KINDS, isNote } from './findings.ts';
export type { AffectedSnapshot, CheckCounts, CheckEvent, CheckPhase, CheckSummary, Finding, FindingKind } from './findings.ts';
export { MAX_BUCKETS, describeSelection, parseDataSubset, selectPacks } from './subset.ts';
export type { PackRef, PackSelection } from './subset.ts';
export { planRotation, readRotationState, verifyRotating, writeRotationState } from './rotation.ts';
export type { RotatingCheckOptions, RotationPlan, RotationState } from './rotation.ts';
export { testRecovery } from './recovery.ts';
export type { RecoveryEvent, RecoveryFailure, RecoveryProblem, RecoveryReport, RecoveryTestOptions } from './recovery.ts';
export { compareWithSource } from './compare-source.ts';
export type { SourceComparison, SourceComparisonOptions } from './compare-source.ts';
export { describeRepairIndex, repairIndex } from './repair-index.ts';
export type { RepairIndexOptions, RepairIndexResult } from './repair-index.ts';
export { repairSnapshots } from './repair-snapshots.ts';
export type { RemovedEntry, RepairSnapshotsOptions, RepairSnapshotsResult, SnapshotRepair } from './repair-snapshots.ts';
export { checkConsistency } from './consistency.ts';
export type { ConsistencyEvent, ConsistencyOptions, ConsistencyReport, Destination, DestinationReport, FileDifference, FileRef } from './consistency.ts';
export {
  appendHistory, lastRestoreThroughput, latestVerifiedSnapshotPerSource, readHistory, recordOfCheck, recordOfConsistency, recordOfRecovery,
} from './history.ts';
export type { RestoreThroughput, VerificationKind, VerificationLevel, VerificationOutcome, VerificationRecord, VerifiedSnapshot } from './history.ts';
