/**
 * @backup-manager/workflows: the product's flows, built on the repository engine and taking Backends as parameters
 * (which provider stands behind one is the app's choice): sync a repository to a mirror, and the backup job that
 * backs up to the primary and then syncs it to every other destination.
 */
export { DELETE_ORDER, PrimaryReader, UPLOAD_ORDER, planSync, syncRepository } from './sync/sync.ts';
export type {
  SyncCounts, SyncEvent, SyncFailure, SyncOptions, SyncPlan, SyncReport, SyncSide, SyncedType, VerifiedSource,
} from './sync/sync.ts';
export { runBackupJob, syncDestinations } from './backup-job/backup-job.ts';
export type { BackupJobOptions, BackupJobResult, SyncAllOptions, SyncDestination } from './backup-job/backup-job.ts';
