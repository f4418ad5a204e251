/**
 * Rotating data verification: a daily run reads the next slice of the packs (sorted by id), sized so that the
 * whole repository is read once per period without reading any pack twice. The position is kept per repository id
 * in ~/.backup-manager/verify-rotation.json. Days are UTC calendar days of the injected clock, so a run at 02:00
 * and one at 01:55 the next day are still one day apart.
 *
 * Planning is pure (`planRotation`); the caller saves the returned state only after the run completed, so an
 * interrupted run is simply repeated.
 */
import fs from 'node:fs';
import path from 'node:path';
import { BackupError } from '@backup-manager/core-archive';
import type { Repository } from '@backup-manager/core-archive';
import { verifyRepository } from './check.ts';
import type { CheckOptions } from './check.ts';
import type { CheckSummary } from './findings.ts';

const DAY_MS = 24 * 60 * 60 * 1000;

export interface RotationState {
  version: 1;
  periodDays: number;
  /** UTC midnight of the first day of the current cycle */
  cycleStart: string;
  /** number of the cycle, from 1 */
  cycle: number;
  /** the highest pack id read in this cycle; null before the first read */
  cursor: string | null;
  /** packs read in this cycle so far */
  packsRead: number;
  lastRun?: string;
}

export interface RotationPlan {
  /** the pack ids to read in this run, sorted */
  packs: string[];
  /** day of the cycle, from 0 */
  day: number;
  periodDays: number;
  cycle: number;
  /** true when this run starts a new cycle */
  newCycle: boolean;
  /** packs that the previous cycle never reached (it was cut short by missed runs); they are read in this cycle */
  previousCycleUnread: number;
  /** what to save once the run has completed */
  next: RotationState;
}

function utcDay(d: Date): number {
  return Math.floor(d.getTime() / DAY_MS);
}

/**
 * The slice of `packIds` to read now. On day `d` (0-based) of a cycle of `P` days, runs together have read
 * ceil(N·(d+1)/P) of the N packs; the last day reads everything left. Missed days are caught up by the next run;
 * a second run on the same day reads nothing more.
 */
export function planRotation(state: RotationState | undefined, packIds: readonly string[], now: Date, periodDays: number): RotationPlan {
  if (!Number.isInteger(periodDays) || periodDays < 1) {
    throw new BackupError('INVALID_ARGUMENT', `a rotation period of ${periodDays} days is not possible: give a whole number of days, at least 1`);
  }
  const sorted = [...new Set(packIds)].sort();
  const today = utcDay(now);
  let cycleStartDay = state ? utcDay(new Date(state.cycleStart)) : today;
  let cursor = state?.cursor ?? null;
  let cycle = state?.cycle ?? 1;
  let packsRead = state?.packsRead ?? 0;
  let newCycle = state === undefined;
  let previousCycleUnread = 0;
  if (state && (today - cycleStartDay >= periodDays || today < cycleStartDay || Number.isNaN(cycleStartDay))) {
    previousCycleUnread = cursor === null ? sorted.length : sorted.filter((id) => id > cursor!).length;
    cycleStartDay = today;
    cursor = null;
    cycle += 1;
    packsRead = 0;
    newCycle = true;
  }
  const day = today - cycleStartDay;
  const remaining = cursor === null ? sorted : sorted.filter((id) => id > cursor!);
  const done = sorted.length - remaining.length;
  const take = day >= periodDays - 1 ? remaining.length : Math.max(0, Math.ceil((sorted.length * (day + 1)) / periodDays) - done);
  const packs = remaining.slice(0, take);
  const next: RotationState = {
    version: 1,
    periodDays,
    cycleStart: new Date(cycleStartDay * DAY_MS).toISOString(),
    cycle,
    cursor: packs.at(-1) ?? cursor,
    packsRead: packsRead + packs.length,
    lastRun: now.toISOString(),
  };
  return { packs, day, periodDays, cycle, newCycle, previousCycleUnread, next };
}

interface RotationFile {
  version: 1;
  repositories: Record<string, RotationState>;
}

function readFile(file: string): RotationFile {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { version: 1, repositories: {} };
    throw new BackupError('IO', `cannot read ${file}: ${(e as Error).message}`, { cause: e, subject: file });
  }
  try {
    const v = JSON.parse(text) as RotationFile;
    if (v && typeof v === 'object' && v.repositories && typeof v.repositories === 'object') return v;
  } catch {
    // fall through
  }
  // A damaged position file only costs a restarted cycle, so it is not fatal.
  return { version: 1, repositories: {} };
}

/** The saved rotation of one repository, if any. */
export function readRotationState(file: string, repositoryId: string): RotationState | undefined {
  const s = readFile(file).repositories[repositoryId];
  if (!s || s.version !== 1 || typeof s.cycleStart !== 'string' || !Number.isInteger(s.periodDays)) return undefined;
  return s;
}

/** Saves one repository's rotation atomically (temporary file, then rename), keeping the others'. */
export function writeRotationState(file: string, repositoryId: string, state: RotationState): void {
  const all = readFile(file);
  all.repositories[repositoryId] = state;
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, JSON.stringify(all, null, 2) + '\n', { mode: 0o600 });
  fs.renameSync(tmp, file);
}

export interface RotatingCheckOptions extends Omit<CheckOptions, 'readData'> {
  /** where positions are kept: ~/.backup-manager/verify-rotation.json */
  stateFile: string;
  /** days in which every pack is read once (default 30) */
  periodDays?: number;
  /** the clock (default: the repository context's) */
  now?: () => Date;
}

/**
 * One rotating run: plans today's slice of the pack files, runs the check reading exactly those packs, and saves
 * the new position once the check has completed (an interrupted or failed run leaves the position as it was).
 */
export async function verifyRotating(repo: Repository, options: RotatingCheckOptions): Promise<{ summary: CheckSummary; plan: RotationPlan }> {
  const { stateFile, periodDays = 30, now = repo.context.now, ...check } = options;
  const ids: string[] = [];
  for await (const f of repo.backend.list('data')) ids.push(f.name);
  const plan = planRotation(readRotationState(stateFile, repo.config.id), ids, now(), periodDays);
  const label = `rotation day ${plan.day + 1}/${plan.periodDays} of cycle ${plan.cycle}`;
  const summary = await verifyRepository(repo, { ...check, readData: { kind: 'packs', ids: plan.packs, label } });
  writeRotationState(stateFile, repo.config.id, plan.next);
  return { summary, plan };
}
