/**
 * `bam test-recovery [SNAPSHOT|latest]`: a recovery drill. Restores the snapshot (or a random sample of its files,
 * or some paths) into a fresh temporary folder, checks every restored entry against the snapshot (SHA-256, size,
 * mode, structure, count), measures the restore speed, removes the folder, and writes the report as text and JSON
 * to ~/.backup-manager/recovery-tests/. With --compare-source it also spot-checks the snapshot against the live
 * source. Exit 0 when everything matched, 1 when something did not.
 */
import fs from 'node:fs';
import path from 'node:path';
import { BackupError, shortId, toBackupError } from '@backup-manager/core-archive';
import { compareWithSource, recordOfRecovery, testRecovery } from '@backup-manager/verify';
import type { RecoveryEvent, RecoveryReport, SourceComparison } from '@backup-manager/verify';
import { EXIT } from '../exit-codes.ts';
import { formatBytes, formatDuration, formatRate, formatTime } from '../format.ts';
import { ProgressLine } from '../progress.ts';
import type { Runtime } from '../runtime.ts';
import { recordHistory } from './verify-shared.ts';

export interface RecoveryFlags {
  sample?: string;
  path?: string[];
  target?: string;
  compareSource?: boolean;
  tolerance?: string;
}

function percent(text: string, flag: string): number {
  const v = Number(text.trim().replace(/%$/, ''));
  if (!Number.isFinite(v) || v <= 0 || v > 100) throw new BackupError('INVALID_ARGUMENT', `${flag} ${JSON.stringify(text)}: give a percentage above 0 and at most 100, e.g. 10`);
  return v;
}

export async function testRecoveryCommand(rt: Runtime, ref: string, flags: RecoveryFlags): Promise<number> {
  if (flags.sample !== undefined && flags.path && flags.path.length > 0) throw new BackupError('INVALID_ARGUMENT', 'choose either --sample or --path');
  const samplePercent = flags.sample !== undefined ? percent(flags.sample, '--sample') : undefined;
  const tolerancePercent = flags.tolerance !== undefined ? Number(flags.tolerance.replace(/%$/, '')) : 5;
  if (!Number.isFinite(tolerancePercent) || tolerancePercent < 0) throw new BackupError('INVALID_ARGUMENT', `--tolerance ${flags.tolerance}: give a percentage, e.g. 5`);
  const started = Date.now();
  const location = await rt.repoLocation();
  const repo = await rt.openRepository();
  const line = new ProgressLine(rt);
  let snapshotId: string | undefined;
  try {
    const { report, comparison } = await rt.withLock(repo, false, 'test-recovery', async () => {
      const found = await repo.findSnapshot(ref);
      snapshotId = found.id;
      const r = await testRecovery(repo, found.id, {
        ...(samplePercent !== undefined ? { samplePercent } : {}),
        ...(flags.path && flags.path.length > 0 ? { paths: flags.path } : {}),
        ...(flags.target !== undefined ? { target: flags.target } : {}),
        signal: rt.abort.signal,
        onEvent: (e) => progress(rt, line, e),
      });
      line.clear();
      const c = flags.compareSource ? await compareWithSource(repo, found.id, { tolerancePercent, signal: rt.abort.signal }) : undefined;
      return { report: r, comparison: c };
    });
    const ok = report.ok && (comparison === undefined || comparison.skipped !== undefined || comparison.ok);
    const text = reportText(report, comparison);
    const json = { type: 'recovery-test', ...report, ...(comparison ? { sourceComparison: comparison } : {}), ok };
    const saved = saveReport(rt, report, text, json);
    if (rt.json) rt.printJson(json);
    else rt.print(text + (saved ? `\nreport saved to ${saved}.{txt,json}` : ''));
    const record = recordOfRecovery(report);
    if (comparison && !comparison.skipped && !comparison.ok) {
      record.outcome = 'findings';
      record.findings += comparison.mismatches.length + (comparison.countWithinTolerance ? 0 : 1);
    }
    recordHistory(rt, record);
    rt.logOperation({
      operation: 'test-recovery', repository: location, snapshot: report.snapshot, outcome: ok ? 'success' : 'partial', durationMs: Date.now() - started,
      counts: { files: report.checked.files, failures: report.failures.length, bytes: report.bytesRestored, bytesPerSecond: report.throughputBytesPerSec },
    });
    return ok ? EXIT.ok : EXIT.error;
  } catch (e) {
    line.clear();
    const err = toBackupError(e);
    const interrupted = err.code === 'INTERRUPTED';
    recordHistory(rt, {
      time: new Date(started).toISOString(), repository: location, repositoryId: repo.config.id, kind: 'recovery-test', scope: samplePercent !== undefined ? `sample ${samplePercent}%` : flags.path ? 'paths' : 'full',
      readData: true, ...(snapshotId ? { snapshot: snapshotId } : {}), outcome: interrupted ? 'interrupted' : 'failed', findings: 0, bytesRead: 0, durationMs: Date.now() - started, throughputBytesPerSec: 0, errorCode: err.code,
    });
    rt.logOperation({ operation: 'test-recovery', repository: location, outcome: interrupted ? 'interrupted' : 'failure', durationMs: Date.now() - started, errorCode: err.code });
    throw err;
  } finally {
    repo.close();
  }
}

function progress(rt: Runtime, line: ProgressLine, e: RecoveryEvent): void {
  if (e.type === 'failure') {
    line.clear();
    if (rt.json) rt.printJson({ type: 'failure', ...e.failure });
    else rt.note(`failed: ${e.failure.path}: ${e.failure.problem}: ${e.failure.message}`);
    return;
  }
  if (e.type === 'selected') {
    line.update(() => `sampled ${e.files} file(s) (${e.scope})`, () => ({ phase: 'selected', files: e.files }), true);
    return;
  }
  if (e.type === 'checking') {
    line.update(() => `[${formatDuration(line.elapsed())}] checking restored files ${e.done}/${e.total}`, () => ({ phase: 'check', done: e.done, total: e.total }));
    return;
  }
  const r = e.event;
  if (r.type !== 'progress') return;
  const ms = line.elapsed();
  line.update(
    () => `[${formatDuration(ms)}] restoring ${r.bytesTotal > 0 ? Math.floor((100 * r.bytesDone) / r.bytesTotal) : 100}%  ${formatBytes(r.bytesDone)} / ${formatBytes(r.bytesTotal)}  ${formatRate(r.bytesDone, ms)}`,
    () => ({ phase: 'restore', bytesDone: r.bytesDone, bytesTotal: r.bytesTotal }),
  );
}

/** The human report. */
export function reportText(r: RecoveryReport, c: SourceComparison | undefined): string {
  const lines: string[] = [];
  lines.push(`recovery test of snapshot ${shortId(r.snapshot)} (${formatTime(r.snapshotTime)}, ${r.hostname}:${r.sources.join(',')}), ${r.scopeText}`);
  lines.push(`  restored ${r.checked.files} file(s), ${r.checked.dirs} folder(s), ${r.checked.others} other entr${r.checked.others === 1 ? 'y' : 'ies'}; ${formatBytes(r.bytesRestored)} in ${formatDuration(r.restoreMs)} (${r.throughputBytesPerSec > 0 ? `${formatBytes(r.throughputBytesPerSec)}/s` : '–'})`);
  lines.push(`  expected ${r.expected.files} file(s), ${r.expected.dirs} folder(s), ${r.expected.others} other; checked SHA-256, size, mode and structure of each`);
  lines.push(`  restored into ${r.target}${r.kept ? ' (kept)' : ' (removed)'}; total ${formatDuration(r.durationMs)}`);
  for (const s of r.skipped) lines.push(`  skipped ${s.path}: ${s.reason}`);
  if (r.failures.length > 0) {
    lines.push(`FAILED: ${r.failures.length} entr${r.failures.length === 1 ? 'y' : 'ies'} did not come back intact:`);
    for (const f of r.failures.slice(0, 200)) lines.push(`  ${f.path}: ${f.problem}: ${f.message}`);
    if (r.failures.length > 200) lines.push(`  … and ${r.failures.length - 200} more (see the JSON report)`);
    lines.push('run `bam verify --read-data` to see what is damaged and which snapshots it affects');
  } else {
    lines.push(r.ok ? 'PASSED: every restored entry matches the snapshot' : 'FAILED');
  }
  if (c) {
    if (c.skipped) lines.push(`source comparison skipped: ${c.skipped}`);
    else {
      lines.push(`source comparison (${c.sources.join(', ')}): ${c.liveFiles} file(s) now, ${c.snapshotFiles} in the snapshot (${c.differencePercent}% apart, tolerance ${c.tolerancePercent}%)${c.countWithinTolerance ? '' : ' — OUT OF TOLERANCE'}`);
      lines.push(`  compared ${c.compared} unchanged file(s) by content (${c.changed} sampled file(s) had changed since)`);
      for (const m of c.mismatches) lines.push(`  CONTENT DIFFERS although size and mtime are unchanged: ${m.path} (now ${m.actual.slice(0, 12)}…, snapshot ${m.expected.slice(0, 12)}…)`);
      for (const u of c.unreadable) lines.push(`  could not read ${u.path}: ${u.message}`);
    }
  }
  return lines.join('\n');
}

/** Keeps the evidence: ~/.backup-manager/recovery-tests/<time>-<snapshot>.{txt,json}. */
function saveReport(rt: Runtime, r: RecoveryReport, text: string, json: unknown): string | undefined {
  try {
    const dir = path.join(rt.home, 'recovery-tests');
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const base = path.join(dir, `${r.startedAt.replace(/[:.]/g, '-')}-${shortId(r.snapshot)}`);
    fs.writeFileSync(`${base}.txt`, text + '\n', { mode: 0o600 });
    fs.writeFileSync(`${base}.json`, JSON.stringify(json, null, 2) + '\n', { mode: 0o600 });
    return base;
  } catch (e) {
    rt.note(`warning: could not save the report: ${(e as Error).message}`);
    return undefined;
  }
}
