/**
 * Spot-checks a snapshot against the live source it was taken from: the number of files should still be close
 * (within a tolerance, 5% by default), and files that did not change since (same size and mtime) must still have
 * the content the snapshot recorded. A mismatch there means the backup or the disk altered data silently.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { createExcludeMatcher } from '@backup-manager/core-archive';
import type { Id, Repository } from '@backup-manager/core-archive';
import { ensureIndex } from './load-index.ts';
import { joinSnapshotPath, throwIfAborted } from './util.ts';

export interface SourceComparisonOptions {
  /** allowed difference of the file counts, in percent of the snapshot's (default 5) */
  tolerancePercent?: number;
  /** unchanged files compared by content (default 20) */
  sampleSize?: number;
  random?: () => number;
  signal?: AbortSignal;
}

export interface SourceComparison {
  snapshot: Id;
  sources: string[];
  /** set when the comparison could not run, saying why (another host, a stdin snapshot, sources gone) */
  skipped?: string;
  snapshotFiles: number;
  liveFiles: number;
  differencePercent: number;
  tolerancePercent: number;
  countWithinTolerance: boolean;
  /** files compared by content because their size and mtime are unchanged */
  compared: number;
  /** sampled files that changed or disappeared since the snapshot (not compared) */
  changed: number;
  mismatches: { path: string; expected: string; actual: string }[];
  unreadable: { path: string; message: string }[];
  ok: boolean;
}

interface Candidate {
  path: string;
  size: number;
  mtimeNs: string;
  sha256: string;
}

export async function compareWithSource(repo: Repository, snapshotId: Id, options: SourceComparisonOptions = {}): Promise<SourceComparison> {
  await ensureIndex(repo);
  const snap = await repo.loadSnapshot(snapshotId);
  const tolerancePercent = options.tolerancePercent ?? 5;
  const sampleSize = options.sampleSize ?? 20;
  const random = options.random ?? Math.random;
  const base: SourceComparison = {
    snapshot: snapshotId, sources: snap.paths, snapshotFiles: 0, liveFiles: 0, differencePercent: 0, tolerancePercent,
    countWithinTolerance: true, compared: 0, changed: 0, mismatches: [], unreadable: [], ok: true,
  };
  if (snap.hostname !== repo.context.hostname) {
    return { ...base, skipped: `the snapshot was taken on ${snap.hostname}, this is ${repo.context.hostname}: its source is not here` };
  }
  const live = snap.paths.filter((p) => path.isAbsolute(p) && fs.existsSync(p));
  if (live.length === 0) return { ...base, skipped: 'none of the snapshot\'s source paths exists here (or it was read from stdin)' };

  // Snapshot side: count the files and keep a uniform random sample (reservoir), larger than needed because some
  // sampled files will have changed since.
  const reservoir: Candidate[] = [];
  const room = sampleSize * 4;
  let snapshotFiles = 0;
  const visit = async (treeId: Id, dir: string): Promise<void> => {
    throwIfAborted(options.signal, 'source comparison');
    for (const n of (await repo.loadTree(treeId)).nodes) {
      const p = joinSnapshotPath(dir, n.name);
      if (n.type === 'dir') await visit(n.subtree!, p);
      else if (n.type === 'file') {
        snapshotFiles++;
        const c = { path: p, size: n.size ?? 0, mtimeNs: n.mtimeNs, sha256: n.sha256 ?? '' };
        if (reservoir.length < room) reservoir.push(c);
        else {
          const j = Math.floor(random() * snapshotFiles);
          if (j < room) reservoir[j] = c;
        }
      }
    }
  };
  await visit(snap.tree, '/');

  // Live side: regular files under the sources, with the snapshot's exclude patterns.
  const excludes = createExcludeMatcher({ patterns: snap.excludes });
  let liveFiles = 0;
  const count = (p: string): void => {
    let st: fs.Stats;
    try {
      st = fs.lstatSync(p);
    } catch {
      return;
    }
    if (st.isFile()) liveFiles++;
    else if (st.isDirectory()) {
      let names: string[];
      try {
        names = fs.readdirSync(p);
      } catch {
        return;
      }
      for (const name of names) {
        const c = p === '/' ? `/${name}` : `${p}/${name}`;
        if (!excludes.matches(c)) count(c);
      }
    }
  };
  for (const p of live) count(p);

  const differencePercent = snapshotFiles === 0 ? (liveFiles === 0 ? 0 : 100) : (Math.abs(liveFiles - snapshotFiles) * 100) / snapshotFiles;
  const countWithinTolerance = differencePercent <= tolerancePercent;

  // Unchanged files: same size and mtime as recorded, so their content must be the same.
  const mismatches: SourceComparison['mismatches'] = [];
  const unreadable: SourceComparison['unreadable'] = [];
  let compared = 0;
  let changed = 0;
  for (const c of shuffle(reservoir, random)) {
    if (compared >= sampleSize) break;
    throwIfAborted(options.signal, 'source comparison');
    let st: fs.BigIntStats;
    try {
      st = fs.lstatSync(c.path, { bigint: true });
    } catch {
      changed++;
      continue;
    }
    if (!st.isFile() || st.size !== BigInt(c.size) || st.mtimeNs.toString() !== c.mtimeNs) {
      changed++;
      continue;
    }
    try {
      const actual = await hashFile(c.path);
      compared++;
      if (actual !== c.sha256) mismatches.push({ path: c.path, expected: c.sha256, actual });
    } catch (e) {
      unreadable.push({ path: c.path, message: (e as Error).message });
    }
  }
  return {
    ...base,
    snapshotFiles, liveFiles, differencePercent: Math.round(differencePercent * 100) / 100, countWithinTolerance,
    compared, changed, mismatches, unreadable, ok: countWithinTolerance && mismatches.length === 0,
  };
}

function shuffle<T>(items: T[], random: () => number): T[] {
  const a = items.slice();
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

async function hashFile(p: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of fs.createReadStream(p)) h.update(chunk as Buffer);
  return h.digest('hex');
}
