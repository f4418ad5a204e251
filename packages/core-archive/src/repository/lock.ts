/**
 * Repository locks. A backup holds a shared lock, anything that deletes holds an exclusive one. Locks never need
 * a manual unlock after a crash on the same host: a lock whose process is gone (or whose PID now belongs to a
 * different process) is stale, and so is any lock not refreshed for 30 minutes.
 */
import { readFileSync } from 'node:fs';
import { BackupError, isBackupError } from '../errors.ts';
import type { Id, LockDocument } from '../format.ts';
import type { Repository } from './repository.ts';

export const LOCK_STALE_MS = 30 * 60 * 1000;
export const LOCK_REFRESH_MS = 5 * 60 * 1000;

export interface LockOptions {
  exclusive: boolean;
  operation: string;
  /** how often to refresh; tests shorten it */
  refreshMs?: number;
}

export interface HeldLock {
  readonly id: Id;
  readonly doc: LockDocument;
  /**
   * Aborts when the lock could not be refreshed for so long that others will soon treat it as stale: the holder
   * must stop, because a prune may then start and delete data it is still writing or reading.
   */
  readonly lost: AbortSignal;
  /** Stops refreshing and removes the lock file. Safe to call twice. */
  release(): Promise<void>;
}

export interface LockInfo {
  id: Id;
  doc: LockDocument | undefined;
  stale: boolean;
  reason: string;
}

/** Linux: the start time of a process, to tell a live PID from a reused one. */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces and parentheses: split after its closing parenthesis.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return rest[19];
  } catch {
    return undefined;
  }
}

/** Linux: true when the process has exited but was not reaped yet (a zombie, e.g. orphaned under a slow init). */
function processExited(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state === 'Z' || state === 'X';
  } catch {
    return false;
  }
}

function processAlive(pid: number, start: string | undefined): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ESRCH') return false;
  }
  // kill(pid, 0) succeeds for a zombie: a crashed holder whose parent died too stays one until init reaps it.
  if (processExited(pid)) return false;
  if (start !== undefined) {
    const now = processStartTime(pid);
    if (now !== undefined && now !== start) return false;
  }
  return true;
}

export function lockStaleness(doc: LockDocument, repo: Repository): { stale: boolean; reason: string } {
  const age = repo.context.now().getTime() - Date.parse(doc.time);
  if (age > LOCK_STALE_MS) return { stale: true, reason: `not refreshed for ${Math.round(age / 60000)} minutes` };
  if (doc.hostname === repo.context.hostname && !processAlive(doc.pid, doc.processStart)) {
    return { stale: true, reason: `process ${doc.pid} on this host no longer runs` };
  }
  return { stale: false, reason: 'held by a running process' };
}

export async function listLocks(repo: Repository): Promise<LockInfo[]> {
  const out: LockInfo[] = [];
  for (const id of await repo.listIds('locks')) {
    try {
      const doc = (await repo.loadDocument('lock', id)) as LockDocument;
      out.push({ id, doc, ...lockStaleness(doc, repo) });
    } catch (e) {
      // A lock removed while we listed is simply gone; an unreadable one is treated as stale.
      if (isBackupError(e, 'NOT_FOUND')) continue;
      out.push({ id, doc: undefined, stale: true, reason: 'unreadable lock file' });
    }
  }
  return out;
}

function describeLock(doc: LockDocument): string {
  return `${doc.exclusive ? 'exclusively ' : ''}locked by ${doc.operation} of ${doc.username}@${doc.hostname} (pid ${doc.pid}) since ${doc.time}`;
}

/** Takes a lock, failing with LOCKED when a conflicting live lock exists. */
export async function lockRepository(repo: Repository, options: LockOptions): Promise<HeldLock> {
  const ctx = repo.context;
  const makeDoc = (): LockDocument => {
    const doc: LockDocument = {
      version: 1,
      time: ctx.now().toISOString(),
      exclusive: options.exclusive,
      hostname: ctx.hostname,
      username: ctx.username,
      pid: ctx.pid,
      operation: options.operation,
    };
    const start = ctx.pid === process.pid ? processStartTime(ctx.pid) : undefined;
    if (start !== undefined) doc.processStart = start;
    return doc;
  };
  let doc = makeDoc();
  let id = await repo.saveDocument('lock', doc);
  const others = (await listLocks(repo)).filter((l) => l.id !== id);
  const conflict = others.find((l) => !l.stale && l.doc && (l.doc.exclusive || options.exclusive));
  if (conflict?.doc) {
    await repo.backend.remove({ type: 'locks', name: id });
    throw new BackupError('LOCKED', `the repository is ${describeLock(conflict.doc)}. Wait for it to finish; if that process is gone, run \`bam unlock\``, { subject: `locks/${conflict.id}` });
  }
  // Stale locks of this host's dead processes are cleaned up as we go, so a crash never needs a manual unlock.
  for (const l of others) {
    if (l.stale && l.doc?.hostname === ctx.hostname) {
      await repo.backend.remove({ type: 'locks', name: l.id }).catch(() => undefined);
    }
  }
  let released = false;
  let refreshing: Promise<void> = Promise.resolve();
  const refreshMs = options.refreshMs ?? LOCK_REFRESH_MS;
  const lost = new AbortController();
  let lastRefreshed = ctx.now().getTime();
  const timer = setInterval(() => {
    refreshing = refreshing.then(async () => {
      if (released) return;
      const fresh = makeDoc();
      const freshId = await repo.saveDocument('lock', fresh);
      const old = id;
      id = freshId;
      doc = fresh;
      lastRefreshed = Date.parse(fresh.time);
      await repo.backend.remove({ type: 'locks', name: old });
    }).catch((e: unknown) => {
      // A failed refresh is tried again at the next tick; only a lock about to look stale to others is given up.
      const age = ctx.now().getTime() - lastRefreshed;
      if (!lost.signal.aborted && age > LOCK_STALE_MS - refreshMs) {
        lost.abort(new BackupError('LOCKED', `the repository lock could not be refreshed for ${Math.round(age / 60000)} minutes (${(e as Error).message}); stopping, so that no other process treats it as stale while this one works`, { cause: e }));
      }
    });
  }, refreshMs);
  timer.unref();
  return {
    get id() {
      return id;
    },
    get doc() {
      return doc;
    },
    lost: lost.signal,
    async release() {
      if (released) return;
      released = true;
      clearInterval(timer);
      await refreshing;
      await repo.backend.remove({ type: 'locks', name: id });
    },
  };
}

/** Removes stale locks (or all locks with `all`), returning what was removed. */
export async function removeLocks(repo: Repository, all: boolean): Promise<LockInfo[]> {
  const removed: LockInfo[] = [];
  for (const l of await listLocks(repo)) {
    if (all || l.stale) {
      await repo.backend.remove({ type: 'locks', name: l.id });
      removed.push(l);
    }
  }
  return removed;
}
