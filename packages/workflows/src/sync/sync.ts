/**
 * Mirroring a repository to another destination (the "2" and "1" of the 3-2-1 rule). Repository files are
 * immutable and named by the SHA-256 of their content, so a sync is a comparison of listings: upload what the
 * mirror lacks, remove what the primary no longer has. It keeps no state of its own; a sync that failed halfway is
 * caught up by the next one, which compares the listings again.
 *
 * Order is what keeps the mirror a valid repository at every moment, as it does for the primary (docs/format.md):
 * uploads go data → index → keys → config → snapshots, so nothing on the mirror ever refers to a file that is not
 * there yet; deletions go snapshots → index → data (→ keys), the order prune deletes in. Each step completes before
 * the next starts, and a failure stops the sync there: a mirror interrupted at any point holds a repository that
 * opens and restores every snapshot it lists.
 */
import { createHash } from 'node:crypto';
import { BackupError, handlePath, toBackupError } from '@backup-manager/core-archive';
import type { Backend, FileInfo, FileType, Handle } from '@backup-manager/core-archive';

/** The file types a mirror holds. Locks are not copied: they belong to the processes using one destination. */
export type SyncedType = Exclude<FileType, 'locks'>;

/** Upload order: whatever a file refers to is on the mirror before the file is. */
export const UPLOAD_ORDER: readonly SyncedType[] = ['data', 'index', 'keys', 'config', 'snapshots'];

/** Deletion order: a snapshot goes before the index entries and packs it needs; keys last. Config is never deleted. */
export const DELETE_ORDER: readonly SyncedType[] = ['snapshots', 'index', 'data', 'keys'];

/**
 * The order the primary is listed in, the reverse of the order a backup writes in: a snapshot that appears in the
 * listing was written after its index and packs, so they appear in the listings that follow, even while a backup
 * writes to the primary during the sync.
 */
const PRIMARY_LIST_ORDER: readonly SyncedType[] = ['snapshots', 'keys', 'config', 'index', 'data'];

const DEFAULT_CONCURRENCY = 4;

export interface SyncCounts {
  files: number;
  bytes: number;
}

/** What a sync found to do, before doing it. */
export interface SyncPlan {
  /** Files the mirror lacks (or holds with another size than the primary's). */
  upload: SyncCounts;
  /** Of those, the files the mirror holds with a wrong size (a damaged copy): uploaded again. */
  replace: SyncCounts;
  /** Files the mirror holds that the primary no longer has (removed by forget or prune). */
  delete: SyncCounts;
  /** Of the files absent from the primary, those an append-only mirror keeps. */
  keep: SyncCounts;
  /** Files already on the mirror with the right size. */
  unchanged: SyncCounts;
}

export type SyncEvent =
  | { type: 'plan'; destination: string; dryRun: boolean; plan: SyncPlan }
  | { type: 'phase'; destination: string; phase: 'upload' | 'delete'; fileType: SyncedType; files: number }
  | { type: 'uploaded'; destination: string; file: string; bytes: number; done: SyncCounts; total: SyncCounts }
  | { type: 'deleted'; destination: string; file: string; done: number; total: number };

export interface SyncOptions {
  /** Never delete at the mirror: files the primary removed stay there (and are counted as `keep`). */
  appendOnly?: boolean;
  /** List and compare only: report what would be uploaded and deleted, change nothing. */
  dryRun?: boolean;
  /** Files transferred at once to this mirror (default 4). */
  concurrency?: number;
  onEvent?: (event: SyncEvent) => void;
  signal?: AbortSignal;
  /** The name reports and events use for the mirror (default: its `location`). */
  name?: string;
}

/** Which side of the sync a failure came from: a failing mirror is the mirror's problem, a failing primary is everyone's. */
export type SyncSide = 'primary' | 'mirror';

export interface SyncFailure {
  code: string;
  message: string;
  side: SyncSide;
  subject?: string;
}

export interface SyncReport {
  destination: string;
  /** `success` also for a dry run that could list both sides. */
  outcome: 'success' | 'failure' | 'interrupted';
  dryRun: boolean;
  appendOnly: boolean;
  /** Absent when the sync failed before both sides were listed. */
  plan?: SyncPlan;
  uploaded: SyncCounts;
  deleted: SyncCounts;
  durationMs: number;
  error?: SyncFailure;
}

/** Reads a file of the primary, checked against its name; shared by the syncs of several mirrors (see PrimaryReader). */
export interface VerifiedSource {
  read(h: Handle, size: number): Promise<Uint8Array>;
}

/**
 * Copies `primary` to `mirror` so that the mirror holds the same repository, and reports what it did. It never
 * throws for a failure of either side: the report says `failure` (or `interrupted`) with the error and which side
 * it came from, and counts what was done before. The caller keeps the primary from being pruned meanwhile (holds a
 * shared lock on it); backups may write to the primary during a sync, and what they add is copied next time.
 *
 * Every file is read whole from the primary and checked against its name (the SHA-256 of its content) before it is
 * uploaded, so damage on the primary is never spread; after the upload the mirror's size of the file is checked.
 * A mirror that holds a different repository (its `config` differs) is refused with REPOSITORY_EXISTS, untouched.
 */
export function syncRepository(primary: Backend, mirror: Backend, options: SyncOptions = {}): Promise<SyncReport> {
  return syncWithSource(primary, new PrimaryReader(primary), mirror, options);
}

/** syncRepository with a given source of primary files, so that several mirrors share one reader. */
export async function syncWithSource(primary: Backend, source: VerifiedSource, mirror: Backend, options: SyncOptions = {}): Promise<SyncReport> {
  const started = Date.now();
  const name = options.name ?? mirror.location;
  const dryRun = options.dryRun === true;
  const appendOnly = options.appendOnly === true;
  const concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;
  if (!Number.isSafeInteger(concurrency) || concurrency < 1) {
    throw new BackupError('INVALID_ARGUMENT', `sync concurrency must be an integer >= 1, got ${concurrency}`);
  }
  const emit = options.onEvent ?? (() => undefined);
  const signal = options.signal;
  const report: SyncReport = { destination: name, outcome: 'success', dryRun, appendOnly, uploaded: counts(), deleted: counts(), durationMs: 0 };

  try {
    checkAborted(signal);
    const primaryFiles = await onSide('primary', () => listAll(primary, PRIMARY_LIST_ORDER, signal));
    if (!primaryFiles.get('config')?.has('config')) {
      throw new SideError('primary', new BackupError('REPOSITORY_NOT_FOUND', `there is no repository at ${primary.location} to copy (no config file): check the repository location`, { subject: primary.location }));
    }
    const mirrorFiles = await onSide('mirror', () => listAll(mirror, UPLOAD_ORDER, signal));
    await checkSameRepository(primary, primaryFiles, mirror, mirrorFiles, source);

    const { plan, uploads, deletes } = planSync(primaryFiles, mirrorFiles, appendOnly);
    report.plan = plan;
    emit({ type: 'plan', destination: name, dryRun, plan });
    if (plan.delete.files > 0) refuseIfPrimaryLooksEmptied(primary, primaryFiles, mirror);
    if (dryRun) return finish(report, started);

    const total = plan.upload;
    for (const type of UPLOAD_ORDER) {
      const files = uploads.get(type) ?? [];
      if (files.length === 0) continue;
      emit({ type: 'phase', destination: name, phase: 'upload', fileType: type, files: files.length });
      await forEachLimited(files, concurrency, signal, async (file) => {
        const h: Handle = { type, name: file.name };
        const data = await onSide('primary', () => source.read(h, file.size));
        await onSide('mirror', async () => {
          await mirror.save(h, data);
          const stored = await mirror.stat(h);
          if (stored.size !== data.byteLength) {
            throw new BackupError(
              'CORRUPT',
              `after uploading ${handlePath(h)} to ${name}, the destination reports ${stored.size} bytes instead of ${data.byteLength}; the next sync uploads it again`,
              { subject: handlePath(h) },
            );
          }
        });
        report.uploaded.files++;
        report.uploaded.bytes += data.byteLength;
        emit({ type: 'uploaded', destination: name, file: handlePath(h), bytes: data.byteLength, done: { ...report.uploaded }, total });
      });
    }

    for (const type of DELETE_ORDER) {
      const files = deletes.get(type) ?? [];
      if (files.length === 0) continue;
      emit({ type: 'phase', destination: name, phase: 'delete', fileType: type, files: files.length });
      await forEachLimited(files, concurrency, signal, async (file) => {
        const h: Handle = { type, name: file.name };
        await onSide('mirror', () => mirror.remove(h));
        report.deleted.files++;
        report.deleted.bytes += file.size;
        emit({ type: 'deleted', destination: name, file: handlePath(h), done: report.deleted.files, total: plan.delete.files });
      });
    }
    return finish(report, started);
  } catch (e) {
    const err = e instanceof SideError ? e.error : toBackupError(e);
    report.outcome = err.code === 'INTERRUPTED' ? 'interrupted' : 'failure';
    report.error = {
      code: err.code,
      message: err.message,
      side: e instanceof SideError ? e.side : 'mirror',
      ...(err.subject === undefined ? {} : { subject: err.subject }),
    };
    return finish(report, started);
  }
}

function finish(report: SyncReport, started: number): SyncReport {
  report.durationMs = Date.now() - started;
  return report;
}

function counts(): SyncCounts {
  return { files: 0, bytes: 0 };
}

type Listing = Map<SyncedType, Map<string, number>>;

async function listAll(backend: Backend, order: readonly SyncedType[], signal: AbortSignal | undefined): Promise<Listing> {
  const out: Listing = new Map();
  for (const type of order) {
    const files = new Map<string, number>();
    for await (const f of backend.list(type)) {
      checkAborted(signal);
      files.set(f.name, f.size);
    }
    out.set(type, files);
  }
  return out;
}

/** What to upload and delete, per type, each list sorted by name (so that mirrors syncing at once read alike). */
export function planSync(
  primaryFiles: ReadonlyMap<SyncedType, ReadonlyMap<string, number>>,
  mirrorFiles: ReadonlyMap<SyncedType, ReadonlyMap<string, number>>,
  appendOnly: boolean,
): { plan: SyncPlan; uploads: Map<SyncedType, FileInfo[]>; deletes: Map<SyncedType, FileInfo[]> } {
  const plan: SyncPlan = { upload: counts(), replace: counts(), delete: counts(), keep: counts(), unchanged: counts() };
  const uploads = new Map<SyncedType, FileInfo[]>();
  const deletes = new Map<SyncedType, FileInfo[]>();
  const add = (c: SyncCounts, size: number) => {
    c.files++;
    c.bytes += size;
  };
  for (const type of UPLOAD_ORDER) {
    const here = primaryFiles.get(type) ?? new Map<string, number>();
    const there = mirrorFiles.get(type) ?? new Map<string, number>();
    const up: FileInfo[] = [];
    for (const [name, size] of here) {
      const theirs = there.get(name);
      if (theirs === size) {
        add(plan.unchanged, size);
        continue;
      }
      if (theirs !== undefined) add(plan.replace, size);
      add(plan.upload, size);
      up.push({ name, size });
    }
    const gone: FileInfo[] = [];
    for (const [name, size] of there) {
      if (here.has(name) || type === 'config') continue;
      if (appendOnly) add(plan.keep, size);
      else {
        add(plan.delete, size);
        gone.push({ name, size });
      }
    }
    uploads.set(type, up.sort(byName));
    deletes.set(type, gone.sort(byName));
  }
  return { plan, uploads, deletes };
}

const byName = (a: FileInfo, b: FileInfo): number => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

/** A mirror whose config differs holds another repository: syncing would overwrite it and delete its snapshots. */
async function checkSameRepository(primary: Backend, primaryFiles: Listing, mirror: Backend, mirrorFiles: Listing, source: VerifiedSource): Promise<void> {
  const theirs = mirrorFiles.get('config')?.get('config');
  const size = primaryFiles.get('config')?.get('config');
  if (theirs === undefined || size === undefined) return;
  const h: Handle = { type: 'config', name: 'config' };
  const [ours, stored] = await Promise.all([onSide('primary', () => source.read(h, size)), onSide('mirror', () => mirror.load(h))]);
  if (!Buffer.from(ours).equals(Buffer.from(stored))) {
    throw new SideError(
      'mirror',
      new BackupError(
        'REPOSITORY_EXISTS',
        `${mirror.location} holds another repository than ${primary.location} (their config files differ), so it was left alone: point this destination at an empty folder, or remove that repository first`,
        { subject: mirror.location },
      ),
    );
  }
}

/**
 * A primary that lists snapshots but no index or no pack files is damaged or misconfigured (a repository with a
 * snapshot always has both), and mirroring its deletions would destroy the copies: refuse before deleting anything.
 * A primary without snapshots may legitimately have had everything forgotten and pruned.
 */
function refuseIfPrimaryLooksEmptied(primary: Backend, primaryFiles: Listing, mirror: Backend): void {
  if ((primaryFiles.get('snapshots')?.size ?? 0) === 0) return;
  for (const type of ['index', 'data'] as const) {
    if ((primaryFiles.get(type)?.size ?? 0) === 0) {
      throw new SideError(
        'primary',
        new BackupError(
          'CORRUPT',
          `${primary.location} lists snapshots but no ${type} files, so its deletions were not copied to ${mirror.location}: check the primary with \`bam verify\` (the mirror still holds the copies)`,
          { subject: primary.location },
        ),
      );
    }
  }
}

/** An error tagged with the side it came from. */
class SideError extends Error {
  readonly side: SyncSide;
  readonly error: BackupError;

  constructor(side: SyncSide, error: BackupError) {
    super(error.message, { cause: error });
    this.side = side;
    this.error = error;
  }
}

async function onSide<T>(side: SyncSide, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof SideError) throw e;
    throw new SideError(side, toBackupError(e));
  }
}

function checkAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted === true) throw new BackupError('INTERRUPTED', 'the sync was interrupted; the next sync continues where it stopped');
}

/**
 * Runs `fn` on every item, at most `limit` at once, and fails with the first error: no new item starts after a
 * failure, and the call settles once the items in flight have settled.
 */
async function forEachLimited<T>(items: readonly T[], limit: number, signal: AbortSignal | undefined, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (failure === undefined && next < items.length) {
      const item = items[next++] as T;
      try {
        checkAborted(signal);
        await fn(item);
      } catch (e) {
        failure ??= { error: e };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure !== undefined) throw failure.error;
}

// ---- reading the primary once for several mirrors --------------------------------------------------------------

const DEFAULT_CACHE_BYTES = 64 * 1024 * 1024;

/**
 * Reads primary files whole and checks each against its name before handing it out: a file whose SHA-256 is not its
 * name is CORRUPT and is never uploaded anywhere. Mirrors synced at the same time ask for the same files in the same
 * order, so a read in flight is shared, and recently read files are kept up to `cacheBytes` (default 64 MiB):
 * each file is then read and hashed about once, however many mirrors there are.
 */
export class PrimaryReader implements VerifiedSource {
  readonly #primary: Backend;
  readonly #cacheBytes: number;
  readonly #inFlight = new Map<string, Promise<Uint8Array>>();
  /** Insertion-ordered: the first entry is the least recently used. */
  readonly #cache = new Map<string, Uint8Array>();
  #cached = 0;

  constructor(primary: Backend, options: { cacheBytes?: number } = {}) {
    this.#primary = primary;
    this.#cacheBytes = options.cacheBytes ?? DEFAULT_CACHE_BYTES;
  }

  read(h: Handle, size: number): Promise<Uint8Array> {
    const key = handlePath(h);
    const hit = this.#cache.get(key);
    if (hit !== undefined) {
      this.#cache.delete(key);
      this.#cache.set(key, hit);
      return Promise.resolve(hit);
    }
    const pending = this.#inFlight.get(key);
    if (pending !== undefined) return pending;
    const loading = this.#load(h, size).finally(() => this.#inFlight.delete(key));
    this.#inFlight.set(key, loading);
    return loading;
  }

  async #load(h: Handle, size: number): Promise<Uint8Array> {
    const data = await this.#primary.load(h);
    const where = `${handlePath(h)} at ${this.#primary.location}`;
    if (data.byteLength !== size) {
      throw new BackupError('CORRUPT', `${where} has ${data.byteLength} bytes, but its listing said ${size}: run \`bam verify\` on the primary`, { subject: handlePath(h) });
    }
    if (h.type !== 'config') {
      const digest = createHash('sha256').update(data).digest('hex');
      if (digest !== h.name) {
        throw new BackupError(
          'CORRUPT',
          `${where} is damaged (its SHA-256 is not its name), so it was not copied: run \`bam verify\` on the primary and follow its advice`,
          { subject: handlePath(h) },
        );
      }
    }
    if (data.byteLength <= this.#cacheBytes) {
      this.#cache.set(handlePath(h), data);
      this.#cached += data.byteLength;
      for (const [key, value] of this.#cache) {
        if (this.#cached <= this.#cacheBytes) break;
        this.#cache.delete(key);
        this.#cached -= value.byteLength;
      }
    }
    return data;
  }
}
