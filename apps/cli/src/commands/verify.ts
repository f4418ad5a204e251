/**
 * `bam verify` and `bam verify history` (test-recovery, repair, check-consistency live in their own files; their
 * options are defined in register.ts). verify exits 0 when the repository is healthy (notes such as
 * orphan packs or stale locks do not count) and 1 when it found errors; every run is appended to the verification
 * history (~/.backup-manager/verify-history.jsonl) and the operation log.
 */
import path from 'node:path';
import { parseDuration, parseSize } from '@backup-manager/config';
import { BackupError, shortId, toBackupError } from '@backup-manager/core-archive';
import type { Repository } from '@backup-manager/core-archive';
import {
  lastRestoreThroughput, latestVerifiedSnapshotPerSource, parseDataSubset, readHistory, recordOfCheck, startVerifyPool, verifyRepository, verifyRotating,
} from '@backup-manager/verify';
import type { CheckEvent, CheckSummary, Finding, PackSelection } from '@backup-manager/verify';
import { EXIT } from '../exit-codes.ts';
import { formatBytes, formatDuration, formatRate, formatTime, table } from '../format.ts';
import { ProgressLine } from '../progress.ts';
import type { Runtime } from '../runtime.ts';
import { historyFile, recordHistory } from './verify-shared.ts';

const DAY_MS = 24 * 60 * 60 * 1000;

export interface VerifyFlags {
  readData?: boolean;
  readDataSubset?: string;
  rotate?: boolean | string;
}

function rotationDays(text: string | boolean | undefined, fallback: number): number {
  if (text === undefined || text === true || text === false) return fallback;
  const t = text.trim();
  if (/^\d+$/.test(t)) return Number(t);
  let ms: number;
  try {
    ms = parseDuration(t);
  } catch (e) {
    throw new BackupError('INVALID_ARGUMENT', `--rotate ${JSON.stringify(text)}: give the period in days (30) or as a duration (30d, 4w)`, { cause: e });
  }
  if (ms % DAY_MS !== 0 || ms === 0) throw new BackupError('INVALID_ARGUMENT', `--rotate ${JSON.stringify(text)}: the period must be a whole number of days`);
  return ms / DAY_MS;
}

export async function verifyCommand(rt: Runtime, flags: VerifyFlags): Promise<number> {
  const modes = [flags.readData === true, flags.readDataSubset !== undefined, flags.rotate !== undefined && flags.rotate !== false].filter(Boolean).length;
  if (modes > 1) throw new BackupError('INVALID_ARGUMENT', 'choose one of --read-data, --read-data-subset and --rotate');
  let readData: PackSelection | undefined;
  if (flags.readData) readData = { kind: 'all' };
  if (flags.readDataSubset !== undefined) readData = parseDataSubset(flags.readDataSubset, parseSize);
  const rotating = flags.rotate !== undefined && flags.rotate !== false;
  const periodDays = rotating ? rotationDays(flags.rotate, (await rt.config()).verify.rotation_days) : 0;

  const started = Date.now();
  const startedAt = rt.runContext().now().toISOString();
  const location = await rt.repoLocation();
  // A data check starts its worker threads now: they load their code while the key is derived from the password.
  const pool = readData ? startVerifyPool() : undefined;
  let repo: Repository;
  try {
    repo = await rt.openRepository();
  } catch (e) {
    await pool?.close();
    throw e;
  }
  const render = new CheckRenderer(rt);
  try {
    const summary = await rt.withLock(repo, false, 'verify', async () => {
      const common = { signal: rt.abort.signal, onEvent: (e: CheckEvent) => render.event(e) };
      if (!rotating) return verifyRepository(repo, { ...common, ...(readData ? { readData, ...(pool ? { pool } : {}) } : {}) });
      const { summary: s, plan } = await verifyRotating(repo, { ...common, stateFile: path.join(rt.home, 'verify-rotation.json'), periodDays, now: rt.runContext().now });
      render.clear();
      if (plan.previousCycleUnread > 0) rt.note(`note: the previous rotation cycle ended with ${plan.previousCycleUnread} pack(s) unread (runs were missed); this cycle starts over`);
      return s;
    });
    render.clear();
    render.summary(summary);
    recordHistory(rt, recordOfCheck(summary));
    rt.logOperation({
      operation: 'verify', repository: location, outcome: summary.healthy ? 'success' : 'partial', durationMs: Date.now() - started,
      counts: { errors: summary.errors, notes: summary.notes, snapshots: summary.counts.snapshots, packsRead: summary.counts.packsRead, bytesRead: summary.counts.bytesRead },
    });
    return summary.healthy ? EXIT.ok : EXIT.error;
  } catch (e) {
    render.clear();
    const err = toBackupError(e);
    const interrupted = err.code === 'INTERRUPTED';
    recordHistory(rt, {
      time: startedAt, repository: location, repositoryId: repo.config.id, kind: 'verify', scope: readData ? `read-data ${readData.kind}` : rotating ? 'read-data rotation' : 'structure',
      readData: readData !== undefined || rotating, outcome: interrupted ? 'interrupted' : 'failed', findings: 0, bytesRead: 0, durationMs: Date.now() - started, throughputBytesPerSec: 0, errorCode: err.code,
    });
    rt.logOperation({ operation: 'verify', repository: location, outcome: interrupted ? 'interrupted' : 'failure', durationMs: Date.now() - started, errorCode: err.code });
    throw err;
  } finally {
    // The check closes the pool it was given; this is for a failure before it took it (the lock, say).
    await pool?.close();
    repo.close();
  }
}

const PHASE_TEXT: Record<string, string> = {
  locks: 'checking locks', index: 'loading the index', packs: 'checking pack headers', snapshots: 'loading snapshots',
  trees: 'checking trees', data: 'reading data', impact: 'finding affected files',
};

/** Progress on stderr, findings as they come (text on stdout, or JSON lines), and the closing report. */
export class CheckRenderer {
  private readonly rt: Runtime;
  private readonly line: ProgressLine;
  private phase = 'locks';
  private dataStarted = 0;

  constructor(rt: Runtime) {
    this.rt = rt;
    this.line = new ProgressLine(rt);
  }

  clear(): void {
    this.line.clear();
  }

  event(e: CheckEvent): void {
    switch (e.type) {
      case 'phase':
        this.phase = e.phase;
        if (e.phase === 'data') this.dataStarted = Date.now();
        this.line.update(() => `[${formatDuration(this.line.elapsed())}] ${PHASE_TEXT[e.phase] ?? e.phase}`, () => ({ phase: e.phase, ...(e.total !== undefined ? { total: e.total } : {}) }), true);
        return;
      case 'progress':
        this.line.update(
          () => {
            const head = `[${formatDuration(this.line.elapsed())}] ${PHASE_TEXT[e.phase] ?? e.phase}`;
            if (e.phase !== 'data') return `${head}  ${e.done}${e.total ? `/${e.total}` : ''}`;
            const ms = Date.now() - this.dataStarted;
            const eta = e.done > 0 && e.total > e.done ? `  ETA ${formatDuration(((e.total - e.done) * ms) / e.done)}` : '';
            return `${head}  ${e.done}/${e.total} packs  ${formatBytes(e.bytesRead)}  ${formatRate(e.bytesRead, ms)}${eta}`;
          },
          () => ({ phase: e.phase, done: e.done, total: e.total, bytesRead: e.bytesRead }),
        );
        return;
      case 'finding':
        this.line.clear();
        if (this.rt.json) this.rt.printJson({ type: 'finding', ...e.finding });
        else this.rt.print(`${e.finding.severity === 'error' ? 'error' : 'note'}: [${e.finding.kind}] ${e.finding.message}`);
        return;
      case 'summary':
        return;
    }
  }

  summary(s: CheckSummary): void {
    if (this.rt.json) {
      this.rt.printJson({ type: 'summary', ...s });
      return;
    }
    const c = s.counts;
    const lines: string[] = [];
    const scope = s.dataScope === 'none' ? 'structure' : `structure and data (${s.dataScope === 'all' ? 'all packs' : s.dataScope})`;
    lines.push(`checked the ${scope} of ${s.repository} in ${formatDuration(s.durationMs)}`);
    lines.push(`  ${c.snapshots} snapshot(s), ${c.trees} tree(s), ${c.files} file entries, ${c.packFiles} pack file(s), ${c.indexFiles} index file(s)`);
    if (s.dataScope !== 'none') {
      lines.push(`  read ${c.packsRead} pack(s), ${c.blobsRead} blob(s), ${formatBytes(c.bytesRead)} at ${formatBytes(s.throughputBytesPerSec)}/s`);
    }
    const atRisk = s.findings.filter((f) => f.severity === 'error' && f.affects && f.affects.length > 0);
    if (atRisk.length > 0) {
      lines.push('', 'at risk:');
      for (const f of atRisk.slice(0, TEXT_FINDINGS)) lines.push(...describeAffects(f));
      if (atRisk.length > TEXT_FINDINGS) lines.push(`  … and ${atRisk.length - TEXT_FINDINGS} more finding(s) with affected files (all of them with --json)`);
    }
    const unreadable = s.findings.filter((f) => f.kind === 'unreadable-snapshot');
    for (const f of unreadable) lines.push(`  snapshot ${shortId(f.snapshot!)}: the whole snapshot (its file is damaged)`);
    lines.push('');
    const kinds = Object.entries(s.byKind).map(([k, n]) => `${n} ${k}`).join(', ');
    if (s.healthy) lines.push(`no errors found${s.notes > 0 ? ` (${s.notes} note(s): ${kinds})` : ''}`);
    else lines.push(`${s.errors} error(s)${s.notes > 0 ? ` and ${s.notes} note(s)` : ''}: ${kinds}`);
    this.rt.print(lines.join('\n'));
  }
}

function findingTitle(f: Finding): string {
  const what = f.blob ? `${f.blobType ?? ''} blob ${shortId(f.blob)}`.trim() : f.pack ? `pack ${shortId(f.pack)}` : f.index ? `index ${shortId(f.index)}` : '';
  return `${f.kind}${what ? ` ${what}` : ''}${f.blob && f.pack ? ` in pack ${shortId(f.pack)}` : ''}`;
}

/** How much of the at-risk list the text report shows; --json has all of it. */
const TEXT_FINDINGS = 30;
const TEXT_PATHS = 10;

/** The snapshots and paths a finding puts at risk, indented, for people. */
export function describeAffects(f: Finding): string[] {
  const out = [`  ${findingTitle(f)}:`];
  for (const a of f.affects ?? []) {
    const more = a.morePaths + Math.max(0, a.paths.length - TEXT_PATHS);
    out.push(`    snapshot ${shortId(a.snapshot)} (${formatTime(a.time)}, ${a.hostname}:${a.sources.join(',')}): ${a.paths.slice(0, TEXT_PATHS).join(', ')}${more > 0 ? ` and ${more} more` : ''}`);
  }
  return out;
}

export async function verifyHistoryCommand(rt: Runtime, flags: { limit: string }): Promise<number> {
  const { records, skipped } = readHistory(historyFile(rt));
  const limit = Math.max(0, Number.parseInt(flags.limit, 10) || 0);
  const shown = limit > 0 ? records.slice(-limit) : records;
  // The per-source answer needs the snapshots, so the repository; without a password the history alone is shown.
  let repo: Repository | undefined;
  let sources: ReturnType<typeof latestVerifiedSnapshotPerSource> | undefined;
  let location: string | undefined;
  try {
    location = await rt.repoLocation();
    repo = await rt.openRepository();
    sources = latestVerifiedSnapshotPerSource(records, await repo.listSnapshots());
  } catch (e) {
    if (!rt.json) rt.note(`note: the newest verified snapshot per source needs the repository: ${(e as Error).message}`);
  } finally {
    repo?.close();
  }
  const throughput = lastRestoreThroughput(records, location) ?? lastRestoreThroughput(records);
  if (rt.json) {
    rt.printJson({ type: 'history', records: shown, skippedLines: skipped, latestVerifiedPerSource: sources ?? null, lastRestoreThroughput: throughput ?? null });
    return EXIT.ok;
  }
  if (records.length === 0) {
    rt.print(`no verification yet (${historyFile(rt)}): run \`bam verify\` or \`bam test-recovery\``);
    return EXIT.ok;
  }
  const repos = new Set(shown.map((r) => r.repository));
  rt.print(
    table(
      ['Time', 'Kind', 'Scope', 'Outcome', 'Findings', 'Read', 'Duration', 'Rate', ...(repos.size > 1 ? ['Repository'] : [])],
      shown.map((r) => [
        formatTime(r.time), r.kind, r.scope, r.outcome + (r.errorCode ? ` (${r.errorCode})` : ''), String(r.findings), formatBytes(r.bytesRead),
        formatDuration(r.durationMs), r.throughputBytesPerSec > 0 ? `${formatBytes(r.throughputBytesPerSec)}/s` : '–', ...(repos.size > 1 ? [r.repository] : []),
      ]),
    ) + `\n${shown.length} of ${records.length} record(s)${skipped > 0 ? `; ${skipped} damaged line(s) skipped` : ''}`,
  );
  if (sources) {
    rt.print('\nnewest verified snapshot per source:');
    rt.print(
      table(
        ['Source', 'Newest', 'Verified', 'Level', 'Verified at'],
        sources.map((s) => [
          `${s.hostname}:${s.paths.join(',')}`, shortId(s.newest), s.verified ? shortId(s.verified.snapshot) + (s.verified.snapshot === s.newest ? '' : ' (older)') : 'none',
          s.verified?.level ?? '–', s.verified ? formatTime(s.verified.verifiedAt) : '–',
        ]),
      ),
    );
  }
  if (throughput) rt.print(`\nlast measured restore speed: ${formatBytes(throughput.bytesPerSecond)}/s (${formatBytes(throughput.bytes)} in ${formatDuration(throughput.durationMs)}, ${formatTime(throughput.time)})`);
  return EXIT.ok;
}
