/**
 * The backup job of the 3-2-1 rule: back up to the primary repository, then copy it to every other destination,
 * all destinations at once. A destination that cannot be reached, is full or refuses the sign-in fails alone: the
 * backup on the primary stands, the report says what happened where, and the next run catches the destination up.
 */
import { toBackupError } from '@backup-manager/core-archive';
import type { Backend } from '@backup-manager/core-archive';
import { PrimaryReader, syncWithSource } from '../sync/sync.ts';
import type { SyncOptions, SyncReport } from '../sync/sync.ts';

/** One place the primary is copied to. */
export interface SyncDestination {
  /** How reports and events name it, e.g. `dropbox` or the destination's location. */
  readonly name: string;
  /**
   * Opens the destination, creating its folders where needed. Called once per sync; a failure here (no sign-in,
   * service down) fails only this destination. The sync closes the backend when it is done.
   */
  readonly open: () => Promise<Backend>;
  /** Never delete there (see SyncOptions.appendOnly). */
  readonly appendOnly?: boolean;
}

export type SyncAllOptions = Omit<SyncOptions, 'appendOnly' | 'name'>;

/**
 * Syncs `primary` to every destination in parallel and resolves with one report per destination, in the order
 * given; it never rejects because of a destination. The destinations share one reader of the primary, so each
 * primary file is read and checked about once however many destinations there are.
 */
export async function syncDestinations(primary: Backend, destinations: readonly SyncDestination[], options: SyncAllOptions = {}): Promise<SyncReport[]> {
  const source = new PrimaryReader(primary);
  return Promise.all(
    destinations.map(async (d): Promise<SyncReport> => {
      const started = Date.now();
      let mirror: Backend;
      try {
        mirror = await d.open();
      } catch (e) {
        const err = toBackupError(e);
        return {
          destination: d.name,
          outcome: err.code === 'INTERRUPTED' ? 'interrupted' : 'failure',
          dryRun: options.dryRun === true,
          appendOnly: d.appendOnly === true,
          uploaded: { files: 0, bytes: 0 },
          deleted: { files: 0, bytes: 0 },
          durationMs: Date.now() - started,
          error: { code: err.code, message: err.message, side: 'mirror', ...(err.subject === undefined ? {} : { subject: err.subject }) },
        };
      }
      try {
        return await syncWithSource(primary, source, mirror, { ...options, name: d.name, appendOnly: d.appendOnly === true });
      } finally {
        await mirror.close().catch(() => undefined);
      }
    }),
  );
}

export interface BackupJobOptions<T> {
  /** Writes the new snapshots to the primary. When it throws, nothing is synced and the error propagates. */
  backup: () => Promise<T>;
  /** Whether to sync after this result (default: always), e.g. not after an interrupted or entirely failed run. */
  syncWhen?: (result: T) => boolean;
  primary: Backend;
  destinations: readonly SyncDestination[];
  sync?: SyncAllOptions;
}

export interface BackupJobResult<T> {
  backup: T;
  /** One report per destination; empty when there was nothing to sync to or `syncWhen` said no. */
  sync: SyncReport[];
  /** True when the sync ran. */
  synced: boolean;
}

/**
 * Backs up, then syncs the primary to every destination. The job's success is the backup's: a destination's
 * failure is in its report, never thrown.
 */
export async function runBackupJob<T>(options: BackupJobOptions<T>): Promise<BackupJobResult<T>> {
  const result = await options.backup();
  const wanted = options.destinations.length > 0 && (options.syncWhen?.(result) ?? true);
  if (!wanted) return { backup: result, sync: [], synced: false };
  const sync = await syncDestinations(options.primary, options.destinations, options.sync ?? {});
  return { backup: result, sync, synced: true };
}
