/**
 * `bam backup`: named paths, a stream from stdin, or (with no paths) every configured source, highest priority
 * first, each into its own snapshot. Exit 3 when some files could not be read.
 */
import os from 'node:os';
import path from 'node:path';
import { expandTilde, parseSize } from '@backup-manager/config';
import type { SourceConfig } from '@backup-manager/config';
import { BackupError, backup, prestartWorkers, readExcludeFile, resolveSources, shortId } from '@backup-manager/core-archive';
import type { BackupResult, BackupType, ExcludeOptions, Repository } from '@backup-manager/core-archive';
import { EXIT } from '../exit-codes.ts';
import { formatBytes, formatDuration } from '../format.ts';
import { backupProgress } from '../progress.ts';
import { backupThenSync } from './sync.ts';
import type { Runtime } from '../runtime.ts';

export interface BackupFlags {
  type?: string;
  tag?: string[];
  time?: string;
  parent?: string;
  exclude?: string[];
  excludeFile?: string[];
  excludeIfPresent?: string[];
  excludeLargerThan?: string;
  stdin?: boolean;
  stdinFilename?: string;
}

const TYPES: readonly BackupType[] = ['full', 'incremental', 'differential'];
const PRIORITY_ORDER = { high: 0, medium: 1, low: 2 } as const;

interface Job {
  label: string;
  paths: string[];
  type: BackupType;
  tags: string[];
  excludes: ExcludeOptions;
}

function parseType(t: string | undefined, fallback: BackupType): BackupType {
  if (t === undefined) return fallback;
  if (!TYPES.includes(t as BackupType)) throw new BackupError('INVALID_ARGUMENT', `--type must be one of ${TYPES.join(', ')}, not ${t}`);
  return t as BackupType;
}

function parseTime(t: string | undefined): Date | undefined {
  if (t === undefined) return undefined;
  const d = new Date(t);
  if (Number.isNaN(d.getTime())) throw new BackupError('INVALID_ARGUMENT', `--time ${JSON.stringify(t)} is not a date: use ISO 8601 like 2026-11-22T01:00:00Z`);
  return d;
}

function flagExcludes(flags: BackupFlags): ExcludeOptions {
  const patterns = [...(flags.exclude ?? []), ...(flags.excludeFile ?? []).flatMap(readExcludeFile)];
  const ex: ExcludeOptions = { patterns, ifPresent: flags.excludeIfPresent ?? [] };
  if (flags.excludeLargerThan !== undefined) ex.largerThan = parseSize(flags.excludeLargerThan);
  return ex;
}

function sourceJobs(sources: SourceConfig[], flags: BackupFlags): Job[] {
  const base = flagExcludes(flags);
  return [...sources]
    .map((s, i) => ({ s, i }))
    .sort((a, b) => PRIORITY_ORDER[a.s.priority] - PRIORITY_ORDER[b.s.priority] || a.i - b.i)
    .map(({ s }) => {
      const ex: ExcludeOptions = { patterns: [...(base.patterns ?? []), ...s.exclude], ifPresent: [...(base.ifPresent ?? []), ...s.exclude_if_present] };
      const larger = base.largerThan ?? (s.exclude_larger_than ? parseSize(s.exclude_larger_than) : undefined);
      if (larger !== undefined) ex.largerThan = larger;
      return {
        label: s.path,
        paths: [path.resolve(expandTilde(s.path, os.homedir()))],
        type: parseType(flags.type, s.type),
        tags: [...new Set([...(flags.tag ?? []), ...s.tags])],
        excludes: ex,
      };
    });
}

export async function backupCommand(rt: Runtime, paths: string[], flags: BackupFlags): Promise<number> {
  if (flags.stdin && paths.length > 0) throw new BackupError('INVALID_ARGUMENT', '--stdin backs up the input stream: give no paths with it');
  if (flags.stdin && !flags.stdinFilename) throw new BackupError('INVALID_ARGUMENT', '--stdin needs --stdin-filename NAME, the file name the stream gets in the snapshot');
  const time = parseTime(flags.time);
  let jobs: Job[];
  if (flags.stdin || paths.length > 0) {
    jobs = [{ label: flags.stdin ? `stdin:${flags.stdinFilename}` : paths.join(' '), paths, type: parseType(flags.type, 'incremental'), tags: flags.tag ?? [], excludes: flagExcludes(flags) }];
    // A path that does not exist fails here, before the repository is opened or locked: nothing is written.
    if (!flags.stdin) resolveSources(paths);
  } else {
    const sources = (await rt.config()).sources;
    if (sources.length === 0) {
      throw new BackupError('INVALID_ARGUMENT', `nothing to back up: name paths (bam backup ~/Documents) or add sources to ${rt.paths.config}`);
    }
    jobs = sourceJobs(sources, flags);
  }
  const location = await rt.repoLocation();
  // The worker threads start now: they load their code while the key is derived and the parent chosen. A stream
  // needs none; a backup that finds nothing to read leaves them idle until it exits.
  if (!flags.stdin) prestartWorkers();
  const repo = await rt.openRepository();
  let worst: number = EXIT.ok;
  let failures = 0;
  const results: unknown[] = [];
  try {
    // After the snapshots, the repository is copied to the other enabled destinations (never failing the backup).
    await rt.withLock(repo, false, 'backup', () => backupThenSync(rt, repo, async () => {
      await repo.loadIndex({ cache: rt.indexCache });
      try {
        await runJobs();
      } finally {
        // The next command starts from the index as the jobs left it (the packs of a failed job's finished index
        // files included), without reading the index files they wrote.
        repo.saveIndexCache(rt.indexCache);
      }
    }, () => results.length > 0));
  } finally {
    repo.close();
  }
  // Interrupted after the snapshots (during the sync to other destinations): the snapshots stand, but the run
  // did not finish, and a script must be able to tell.
  if (rt.abort.signal.aborted) return EXIT.interrupted;
  return failures > 0 ? EXIT.error : worst;

  async function runJobs(): Promise<void> {
    for (const job of jobs) {
      let code: number;
      try {
        code = await runJob(rt, repo, job, flags, time, location, results);
      } catch (e) {
        // One failing source must not cost the others their backup: report it and go on, unless the run was
        // interrupted or the repository itself is unusable.
        const err = e instanceof BackupError ? e : new BackupError('INTERNAL', String(e), { cause: e });
        if (jobs.length === 1 || ['INTERRUPTED', 'LOCKED', 'WRONG_PASSWORD', 'REPOSITORY_NOT_FOUND', 'QUOTA_EXCEEDED'].includes(err.code)) throw err;
        rt.streams.stderr.write(`bam: backup of ${job.label} failed: ${err.message}\n`);
        rt.printJson({ type: 'error', source: job.label, code: err.code, message: err.message });
        failures++;
        continue;
      }
      if (code !== EXIT.ok && (worst === EXIT.ok || code !== EXIT.partial)) worst = code;
      if (rt.abort.signal.aborted) break;
    }
  }
}

async function runJob(rt: Runtime, repo: Repository, job: Job, flags: BackupFlags, time: Date | undefined, location: string, results: unknown[]): Promise<number> {
  const started = Date.now();
  const { onEvent, line } = backupProgress(rt);
  let result: BackupResult;
  try {
    result = await backup(repo, {
      paths: job.paths,
      type: job.type,
      tags: job.tags,
      excludes: job.excludes,
      signal: rt.abort.signal,
      onEvent,
      scan: rt.json || rt.streams.stderr.isTTY === true,
      ...(time ? { time } : {}),
      ...(flags.parent ? { parent: flags.parent } : {}),
      ...(rt.options.host ? { hostname: rt.options.host } : {}),
      ...(flags.stdin ? { stdin: { stream: rt.streams.stdin as AsyncIterable<Uint8Array>, filename: flags.stdinFilename! } } : {}),
    });
  } catch (e) {
    line.clear();
    const err = e instanceof BackupError ? e : new BackupError('INTERNAL', String(e), { cause: e });
    rt.logOperation({ operation: 'backup', repository: location, outcome: err.code === 'INTERRUPTED' ? 'interrupted' : 'failure', durationMs: Date.now() - started, errorCode: err.code });
    throw err;
  }
  line.clear();
  const s = result.snapshot.summary;
  const outcome = result.partial ? 'partial' : 'success';
  rt.logOperation({
    operation: 'backup', repository: location, snapshot: result.snapshotId, outcome, durationMs: Date.now() - started,
    counts: { filesNew: s.filesNew, filesChanged: s.filesChanged, filesUnchanged: s.filesUnchanged, filesSkipped: s.filesSkipped, bytesTotal: s.totalBytes, dataAdded: s.dataAdded },
  });
  const doc = { type: 'summary', snapshot: { id: result.snapshotId, ...result.snapshot }, warnings: result.warnings, partial: result.partial, durationMs: Date.now() - started };
  results.push(doc);
  rt.printJson(doc);
  rt.print(
    [
      `snapshot ${shortId(result.snapshotId)} saved (${result.snapshot.type}${result.snapshot.parent ? `, parent ${shortId(result.snapshot.parent)}` : ''}) for ${job.label}`,
      `  files: ${s.filesNew} new, ${s.filesChanged} changed, ${s.filesUnchanged} unchanged${s.filesSkipped ? `, ${s.filesSkipped} skipped` : ''}; ${s.dirs} directories`,
      `  data:  ${formatBytes(s.totalBytes)} processed, ${formatBytes(s.dataAdded)} added to the repository in ${formatDuration(Date.now() - started)}`,
    ].join('\n'),
  );
  if (result.partial) rt.note(`warning: ${s.filesSkipped} item(s) could not be read and are not in the snapshot (see the warnings above)`);
  return result.partial ? EXIT.partial : EXIT.ok;
}
