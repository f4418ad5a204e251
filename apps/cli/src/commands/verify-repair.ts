/**
 * `bam repair index` and `bam repair snapshots`: repairs that never lose anything silently. Both take an exclusive
 * lock, print what they did (or with --dry-run, what they would do), and log the operation.
 * repair index rebuilds the index from the pack headers; repair snapshots writes new snapshots (marked repaired,
 * naming their original) without the files whose data is lost, and keeps the originals for `bam forget`.
 */
import { shortId, toBackupError } from '@backup-manager/core-archive';
import { describeRepairIndex, repairIndex, repairSnapshots, verifyRepository } from '@backup-manager/verify';
import type { RepairSnapshotsResult } from '@backup-manager/verify';
import { EXIT } from '../exit-codes.ts';
import { formatBytes, formatTime } from '../format.ts';
import { ProgressLine } from '../progress.ts';
import type { Runtime } from '../runtime.ts';
import { CheckRenderer } from './verify.ts';

async function logged<T>(rt: Runtime, operation: string, fn: () => Promise<T>, counts: (r: T) => Record<string, number>, partial: (r: T) => boolean): Promise<T> {
  const started = Date.now();
  const repository = await rt.repoLocation();
  try {
    const r = await fn();
    rt.logOperation({ operation, repository, outcome: partial(r) ? 'partial' : 'success', durationMs: Date.now() - started, counts: counts(r) });
    return r;
  } catch (e) {
    const err = toBackupError(e);
    rt.logOperation({ operation, repository, outcome: err.code === 'INTERRUPTED' ? 'interrupted' : 'failure', durationMs: Date.now() - started, errorCode: err.code });
    throw err;
  }
}

export async function repairIndexCommand(rt: Runtime, flags: { dryRun?: boolean }): Promise<number> {
  const repo = await rt.openRepository();
  const line = new ProgressLine(rt);
  try {
    const r = await logged(
      rt,
      flags.dryRun ? 'repair index (dry run)' : 'repair index',
      () => repairIndex(repo, {
        dryRun: flags.dryRun === true,
        signal: rt.abort.signal,
        onEvent: (e) => line.update(() => `reading pack headers ${e.done}/${e.total}`, () => ({ phase: 'headers', done: e.done, total: e.total })),
      }),
      (x) => ({ packs: x.packs, blobs: x.blobs, unreadablePacks: x.unreadablePacks.length, newIndexFiles: x.newIndexFiles.length, oldIndexFiles: x.oldIndexFiles.length }),
      (x) => x.unreadablePacks.length > 0,
    );
    line.clear();
    rt.printJson({ type: 'repair-index', ...r });
    rt.print(describeRepairIndex(r).join('\n'));
    if (r.unreadablePacks.length > 0) rt.note(`warning: ${r.unreadablePacks.length} pack(s) with a damaged header could not be indexed; their blobs stay unindexed. Run \`bam repair snapshots\` to write snapshots without the lost files`);
    return r.unreadablePacks.length > 0 ? EXIT.partial : EXIT.ok;
  } finally {
    line.clear();
    repo.close();
  }
}

export async function repairSnapshotsCommand(rt: Runtime, flags: { dryRun?: boolean; readData?: boolean }): Promise<number> {
  const repo = await rt.openRepository();
  try {
    let damagedBlobs: Set<string> | undefined;
    if (flags.readData) {
      const render = new CheckRenderer(rt);
      const summary = await rt.withLock(repo, false, 'verify', () => verifyRepository(repo, { readData: { kind: 'all' }, signal: rt.abort.signal, onEvent: (e) => { if (e.type !== 'finding') render.event(e); } }));
      render.clear();
      damagedBlobs = new Set(summary.findings.filter((f) => f.kind === 'corrupt-blob' && f.blob).map((f) => f.blob!));
      rt.note(`data check: ${damagedBlobs.size} damaged blob(s) found`);
    }
    const r = await logged(
      rt,
      flags.dryRun ? 'repair snapshots (dry run)' : 'repair snapshots',
      () => repairSnapshots(repo, { dryRun: flags.dryRun === true, signal: rt.abort.signal, ...(damagedBlobs ? { damagedBlobs } : {}) }),
      (x) => ({ repaired: x.snapshots.filter((s) => s.status === 'repaired').length, unrepairable: x.snapshots.filter((s) => s.status === 'unrepairable').length, unreadable: x.unreadable.length, treesWritten: x.treesWritten }),
      (x) => x.unreadable.length > 0 || x.snapshots.some((s) => s.status === 'unrepairable'),
    );
    rt.printJson({ type: 'repair-snapshots', ...r });
    rt.print(repairSnapshotsText(r).join('\n'));
    return r.unreadable.length > 0 || r.snapshots.some((s) => s.status === 'unrepairable') ? EXIT.partial : EXIT.ok;
  } finally {
    repo.close();
  }
}

function repairSnapshotsText(r: RepairSnapshotsResult): string[] {
  const lines: string[] = [];
  const repaired = r.snapshots.filter((s) => s.status === 'repaired');
  for (const s of r.snapshots) {
    const head = `snapshot ${shortId(s.snapshot)} (${formatTime(s.time)}, ${s.hostname}:${s.sources.join(',')})`;
    if (s.status === 'intact') {
      lines.push(`${head}: intact`);
      continue;
    }
    if (s.status === 'unrepairable') {
      lines.push(`${head}: nothing can be saved, its root directory listing is lost (${s.removed[0]?.reason ?? ''}); remove it with \`bam forget ${shortId(s.snapshot)}\``);
      continue;
    }
    const files = s.removed.filter((x) => x.kind === 'file');
    const dirs = s.removed.filter((x) => x.kind === 'dir');
    const bytes = files.reduce((n, x) => n + (x.size ?? 0), 0);
    lines.push(`${head}: ${r.dryRun ? 'would write' : `wrote ${shortId(s.newSnapshot ?? '')}`} without ${files.length} file(s) (${formatBytes(bytes)}) and ${dirs.length} folder(s):`);
    for (const x of s.removed.slice(0, 20)) lines.push(`  - ${x.path}${x.kind === 'dir' ? '/' : ''}: ${x.reason}`);
    if (s.removed.length > 20) lines.push(`  … and ${s.removed.length - 20} more (see --json)`);
  }
  for (const u of r.unreadable) lines.push(`snapshot ${shortId(u.snapshot)}: its file is damaged, nothing can be saved (${u.message})`);
  if (repaired.length === 0) lines.push('no snapshot needs repair');
  else if (r.dryRun) lines.push(`would write ${repaired.length} repaired snapshot(s); run without --dry-run to do it`);
  else lines.push(`wrote ${repaired.length} repaired snapshot(s) (${r.treesWritten} new directory listing(s)); the originals are kept: check the repaired ones, then remove the originals with \`bam forget ${repaired.map((s) => shortId(s.snapshot)).join(' ')}\``);
  return lines;
}
