/**
 * What `forget` and `prune` share once they have a plan: showing the prune part of it, asking for confirmation
 * (a y/N question on a terminal, `--yes` otherwise), rendering prune's progress events, and the result lines.
 */
import readline from 'node:readline';
import { BackupError } from '@backup-manager/core-archive';
import type { PruneEvent, PrunePhase, PrunePlan, PruneResult } from '@backup-manager/core-archive';
import { formatBytes, formatDuration } from '../format.ts';
import { ProgressLine } from '../progress.ts';
import type { Runtime } from '../runtime.ts';

const PHASE_TEXT: Record<PrunePhase, string> = {
  index: 'reading the index',
  snapshots: 'reading snapshots',
  walk: 'finding used data',
  classify: 'checking packs',
  repack: 'repacking',
  'write-index': 'writing the new index',
  'delete-index': 'deleting old index files',
  'delete-packs': 'deleting unused packs',
};

function pct(part: number, whole: number): string {
  return whole > 0 ? `${((100 * part) / whole).toFixed(1)}%` : '0%';
}

/** Plain data for --json: counts and bytes, not the per-blob lists. */
export function prunePlanJson(plan: PrunePlan): Record<string, unknown> {
  return {
    maxUnused: plan.maxUnused,
    empty: plan.empty,
    stats: plan.stats,
    keepPacks: plan.keep.length,
    removePacks: plan.remove.length,
    removeBytes: plan.remove.reduce((n, f) => n + f.size, 0),
    repackPacks: plan.repack.length,
    repackBytes: plan.repack.reduce((n, f) => n + f.size, 0),
    repackBlobs: plan.repackBlobs,
    repackBlobBytes: plan.repackBytes,
    unreferencedPacks: plan.unreferenced.length,
    unreferencedBytes: plan.unreferenced.reduce((n, f) => n + f.size, 0),
    missingPacks: plan.missing.length,
    rewriteIndex: plan.rewriteIndex,
    indexFiles: plan.indexFiles.length,
    estimatedBytesFreed: plan.estimatedBytesFreed,
    planMs: plan.durationMs,
  };
}

/** The prune part of a plan, for people. */
export function prunePlanText(plan: PrunePlan): string {
  const s = plan.stats;
  const sum = (list: { size: number }[]): number => list.reduce((n, f) => n + f.size, 0);
  const lines = [
    `repository: ${s.packs} pack files, ${formatBytes(s.packBytes)}; ${s.snapshots} snapshot(s) use ${s.usedBlobs} blobs, ${formatBytes(s.usedBytes)}; ` +
      `unused ${formatBytes(s.unusedBytes)} (${pct(s.unusedBytes, s.packBytes)})`,
  ];
  if (plan.empty) {
    lines.push('prune: nothing to do (no pack is unused or above the unused threshold)');
    return lines.join('\n');
  }
  const parts: string[] = [];
  if (plan.remove.length > 0) parts.push(`delete ${plan.remove.length} unused pack(s) (${formatBytes(sum(plan.remove))})`);
  if (plan.repack.length > 0) {
    parts.push(`repack ${plan.repack.length} pack(s) (${formatBytes(sum(plan.repack))}) more than ${(plan.maxUnused * 100).toFixed(0)}% unused, copying ${plan.repackBlobs} blobs (${formatBytes(plan.repackBytes)})`);
  }
  if (plan.unreferenced.length > 0) parts.push(`delete ${plan.unreferenced.length} pack file(s) no index lists (${formatBytes(sum(plan.unreferenced))})`);
  if (plan.missing.length > 0) parts.push(`drop ${plan.missing.length} missing pack(s) from the index`);
  if (plan.rewriteIndex) parts.push(`rewrite the index (${plan.indexFiles.length} file(s) now)`);
  lines.push(`prune: ${parts.join('; ')}`);
  lines.push(`prune: frees about ${formatBytes(plan.estimatedBytesFreed)}; ${formatBytes(s.unusedBytesAfter)} stays unused in packs below the threshold`);
  return lines.join('\n');
}

export function pruneResultText(r: PruneResult): string {
  return `pruned: freed ${formatBytes(r.bytesFreed)} in ${formatDuration(r.durationMs)} ` +
    `(deleted ${r.packsDeleted} pack(s) and ${r.indexFilesDeleted} index file(s); repacked ${r.blobsRepacked} blobs from ${r.packsRepacked} pack(s) into ${r.packsWritten}; wrote ${r.indexFilesWritten} index file(s))`;
}

/** Renders prune's events: a status line on a terminal, a JSON line per phase (and at most one a second otherwise). */
export function pruneProgress(rt: Runtime): { onEvent: (e: PruneEvent) => void; line: ProgressLine } {
  const line = new ProgressLine(rt);
  let phase: PrunePhase = 'index';
  const onEvent = (e: PruneEvent): void => {
    if (e.type === 'phase') {
      phase = e.phase;
      line.update(() => `${PHASE_TEXT[phase]}…`, () => ({ phase }), true);
      return;
    }
    line.update(
      () => `${PHASE_TEXT[e.phase]}: ${e.done}${e.total !== undefined ? `/${e.total}` : ''}`,
      () => ({ phase: e.phase, done: e.done, ...(e.total !== undefined ? { total: e.total } : {}) }),
    );
  };
  return { onEvent, line };
}

/**
 * Asks before a destructive step. With --yes: go. On a terminal: a y/N question (anything but y/yes declines).
 * Without one: refuses with a usage error (exit 2) that says to add --yes.
 */
export async function confirm(rt: Runtime, yes: boolean, question: string, what: string): Promise<boolean> {
  if (yes) return true;
  if (rt.streams.stdin.isTTY !== true) {
    throw new BackupError(
      'INVALID_ARGUMENT',
      `refusing to ${what} without confirmation: there is no terminal to ask on. Check the plan above and run the command again with --yes to carry it out (or --dry-run to only show it); nothing was changed`,
    );
  }
  const rl = readline.createInterface({ input: rt.streams.stdin, output: rt.streams.stderr, terminal: false });
  try {
    const answer = await new Promise<string | undefined>((resolve) => {
      rl.once('close', () => resolve(undefined));
      rl.question(`${question} [y/N] `, resolve);
    });
    return answer !== undefined && /^\s*y(es)?\s*$/i.test(answer);
  } finally {
    rl.close();
  }
}
