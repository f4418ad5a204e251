/**
 * The verification history: one JSON line per verify, recovery test and consistency check in
 * ~/.backup-manager/verify-history.jsonl, and the two questions the rest of the product asks of it: which snapshot
 * of each source was verified last (and how strongly), and how fast the last recovery test restored.
 */
import fs from 'node:fs';
import path from 'node:path';
import { compareTime } from '@backup-manager/core-archive';
import type { Id, SnapshotDocument } from '@backup-manager/core-archive';
import { sourceKey } from './check.ts';
import type { ConsistencyReport } from './consistency.ts';
import type { CheckSummary } from './findings.ts';
import type { RecoveryReport } from './recovery.ts';

export type VerificationKind = 'verify' | 'recovery-test' | 'consistency';
export type VerificationOutcome = 'healthy' | 'findings' | 'failed' | 'interrupted';

export interface VerificationRecord {
  /** when it started (ISO 8601) */
  time: string;
  /** the repository's location */
  repository: string;
  repositoryId?: Id;
  kind: VerificationKind;
  /** what was covered: `structure`, `read-data all`, `read-data bucket 1/5`, `rotation day 3/30`, `full`, `sample 10%`, … */
  scope: string;
  /** true when blob data was read and checked (a data check or a restore) */
  readData: boolean;
  /** recovery test: the snapshot restored */
  snapshot?: Id;
  /** verify: the newest snapshot of each source at the time; every older snapshot was covered as well */
  snapshots?: Id[];
  outcome: VerificationOutcome;
  findings: number;
  bytesRead: number;
  durationMs: number;
  throughputBytesPerSec: number;
  /** a short machine-readable error code when the outcome is `failed` */
  errorCode?: string;
}

/** Appends one record. The history is evidence, not state: a write failure is reported to the caller. */
export function appendHistory(file: string, record: VerificationRecord): void {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  fs.appendFileSync(file, JSON.stringify(record) + '\n', { mode: 0o600 });
}

/** Every well-formed record, oldest first; damaged lines are skipped and counted. */
export function readHistory(file: string): { records: VerificationRecord[]; skipped: number } {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { records: [], skipped: 0 };
    throw e;
  }
  const records: VerificationRecord[] = [];
  let skipped = 0;
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    try {
      const r = JSON.parse(line) as VerificationRecord;
      if (typeof r.time === 'string' && typeof r.kind === 'string' && typeof r.outcome === 'string') records.push(r);
      else skipped++;
    } catch {
      skipped++;
    }
  }
  records.sort((a, b) => compareTime(a.time, b.time));
  return { records, skipped };
}

/** How strong the evidence is: the structure resolves < the data was read and re-hashed < it was restored. */
export type VerificationLevel = 'structure' | 'data' | 'restore';
const LEVEL_RANK: Record<VerificationLevel, number> = { structure: 0, data: 1, restore: 2 };

export interface VerifiedSnapshot {
  /** the source: host and backed-up paths */
  hostname: string;
  paths: string[];
  /** the newest snapshot of the source, whether verified or not */
  newest: Id;
  /** the newest verified snapshot of the source, or null when none is */
  verified: { snapshot: Id; time: string; verifiedAt: string; level: VerificationLevel } | null;
}

function levelOf(r: VerificationRecord): VerificationLevel {
  if (r.kind === 'recovery-test') return 'restore';
  // A subset or rotation read some data, but not necessarily this snapshot's: only a full read counts as data.
  return r.readData && r.scope === 'read-data all' ? 'data' : 'structure';
}

/**
 * For each source among `snapshots`, its newest snapshot that a successful verification covered with at least
 * `minLevel` evidence. A healthy verify covers the newest snapshot of every source it recorded and all older ones of
 * those sources; a passed recovery test covers the one snapshot it restored.
 */
export function latestVerifiedSnapshotPerSource(
  history: readonly VerificationRecord[],
  snapshots: readonly { id: Id; snapshot: Pick<SnapshotDocument, 'hostname' | 'paths' | 'time'> }[],
  options: { minLevel?: VerificationLevel } = {},
): VerifiedSnapshot[] {
  const min = LEVEL_RANK[options.minLevel ?? 'structure'];
  const bySource = new Map<string, { id: Id; snapshot: Pick<SnapshotDocument, 'hostname' | 'paths' | 'time'> }[]>();
  for (const s of snapshots) {
    const k = sourceKey(s.snapshot);
    let list = bySource.get(k);
    if (!list) bySource.set(k, (list = []));
    list.push(s);
  }
  const out: VerifiedSnapshot[] = [];
  for (const list of bySource.values()) {
    list.sort((a, b) => compareTime(a.snapshot.time, b.snapshot.time) || (a.id < b.id ? -1 : 1));
    const position = new Map(list.map((s, i) => [s.id, i]));
    let best: { index: number; verifiedAt: string; level: VerificationLevel } | undefined;
    for (const r of history) {
      if (r.outcome !== 'healthy') continue;
      const level = levelOf(r);
      if (LEVEL_RANK[level] < min) continue;
      const covered = r.kind === 'recovery-test' ? (r.snapshot ? [r.snapshot] : []) : (r.snapshots ?? []);
      for (const id of covered) {
        const i = position.get(id);
        if (i === undefined) continue;
        const stronger = best !== undefined && i === best.index && (LEVEL_RANK[level] > LEVEL_RANK[best.level]
          || (LEVEL_RANK[level] === LEVEL_RANK[best.level] && compareTime(r.time, best.verifiedAt) > 0));
        if (!best || i > best.index || stronger) {
          best = { index: i, verifiedAt: r.time, level };
        }
      }
    }
    const newest = list.at(-1)!;
    const verified = best ? list[best.index]! : undefined;
    out.push({
      hostname: newest.snapshot.hostname,
      paths: [...newest.snapshot.paths],
      newest: newest.id,
      verified: verified && best ? { snapshot: verified.id, time: verified.snapshot.time, verifiedAt: best.verifiedAt, level: best.level } : null,
    });
  }
  return out.sort((a, b) => (a.hostname + a.paths.join()).localeCompare(b.hostname + b.paths.join()));
}

export interface RestoreThroughput {
  bytesPerSecond: number;
  bytes: number;
  durationMs: number;
  time: string;
  snapshot?: Id;
  repository: string;
}

/** The restore speed measured by the newest recovery test that restored something (for RTO estimates). */
export function lastRestoreThroughput(history: readonly VerificationRecord[], repository?: string): RestoreThroughput | undefined {
  for (let i = history.length - 1; i >= 0; i--) {
    const r = history[i]!;
    if (r.kind !== 'recovery-test' || r.bytesRead <= 0 || r.throughputBytesPerSec <= 0) continue;
    if (repository !== undefined && r.repository !== repository) continue;
    return {
      bytesPerSecond: r.throughputBytesPerSec, bytes: r.bytesRead, durationMs: r.durationMs, time: r.time, repository: r.repository,
      ...(r.snapshot ? { snapshot: r.snapshot } : {}),
    };
  }
  return undefined;
}

/** The history record of a completed check. */
export function recordOfCheck(summary: CheckSummary): VerificationRecord {
  const readData = summary.dataScope !== 'none';
  return {
    time: summary.startedAt,
    repository: summary.repository,
    repositoryId: summary.repositoryId,
    kind: 'verify',
    scope: readData ? `read-data ${summary.dataScope}` : 'structure',
    readData,
    snapshots: summary.newestSnapshots,
    outcome: summary.healthy ? 'healthy' : 'findings',
    findings: summary.errors,
    bytesRead: summary.counts.bytesRead,
    durationMs: summary.durationMs,
    throughputBytesPerSec: summary.throughputBytesPerSec,
  };
}

/** The history record of a completed recovery test. */
export function recordOfRecovery(report: RecoveryReport): VerificationRecord {
  return {
    time: report.startedAt,
    repository: report.repository,
    repositoryId: report.repositoryId,
    kind: 'recovery-test',
    scope: report.scopeText,
    readData: true,
    snapshot: report.snapshot,
    outcome: report.ok ? 'healthy' : 'findings',
    findings: report.failures.length,
    bytesRead: report.bytesRestored,
    durationMs: report.durationMs,
    throughputBytesPerSec: report.throughputBytesPerSec,
  };
}

/** The history record of a consistency check. */
export function recordOfConsistency(report: ConsistencyReport, startedAt: string, repositoryId?: Id): VerificationRecord {
  const findings = report.primary.corrupt.length + report.primary.unreadable.length
    + report.mirrors.reduce((n, m) => n + m.missing.length + m.extra.length + m.different.length + m.unreadable.length, 0);
  return {
    time: startedAt,
    repository: report.primary.name,
    ...(repositoryId ? { repositoryId } : {}),
    kind: 'consistency',
    scope: `${report.hashed ? 'hash' : 'names and sizes'}: ${report.mirrors.map((m) => m.name).join(', ')}`,
    readData: false,
    outcome: report.consistent ? 'healthy' : 'findings',
    findings,
    bytesRead: report.bytesRead,
    durationMs: report.durationMs,
    throughputBytesPerSec: report.durationMs > 0 ? Math.round((report.bytesRead * 1000) / report.durationMs) : 0,
  };
}
