/**
 * The benchmark behind issue 3: bam against restic on identical data, alternating tools run by run, with each
 * step's input read into the page cache right before it is timed. Writes .bench/report-<timestamp>.{md,json}.
 *
 * Usage: node tools/bench/bench.ts [--runs 3] [--size 1.5G] [--only backup,restore,...]   (see README.md)
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { changePending, changeStats, applyChange, planChange, revertChange, touchedPaths } from './change.ts';
import type { ChangePlan } from './change.ts';
import { CORPUS_ROOTS, compareTrees, ensureCorpus, hashFile, quickCheck, scanTree, treeSize } from './corpus.ts';
import type { CorpusManifest, Entry } from './corpus.ts';
import { buildDigest, freezeBam } from './freeze.ts';
import { describeMachine, finalize, gitDescription, parseSize, toMarkdown } from './report.ts';
import type { Report, Sample, StepId } from './report.ts';
import { bamTool, fileSystemOf, loadAverage, prewarm, residentFraction, resticTool, runPlain, runTimed, stopChildren } from './run.ts';
import type { Invocation, Tool, ToolContext } from './run.ts';
import { ensureBigFile, ensureSmallTree } from './synthetic.ts';

const STEPS = ['backup', 'rebackup', 'change', 'restore', 'restore-ext4', 'check', 'size', 'bigfile', 'smallfiles'] as const;
type Step = (typeof STEPS)[number];
const CORPUS_STEPS: readonly Step[] = ['backup', 'rebackup', 'change', 'restore', 'restore-ext4', 'check', 'size'];

const USAGE = `Usage: node tools/bench/bench.ts [options]

  --runs <n>          runs per tool (default 3); tools alternate run by run
  --size <size>       corpus size, binary units (default 1.5G = 1.5 GiB)
  --only <steps>      comma-separated subset of: ${STEPS.join(', ')} (default: all)
  --seed <n>          seed of the 1% change (default 1)
  --change <frac>     fraction of the corpus the change touches (default 0.01)
  --big <size>        the big single file (default 4G; compared with a 64 MiB file)
  --small-files <n>   files in the small-file tree (default 200000)
  --dir <dir>         where inputs, repositories and reports go (default <workspace>/.bench)
  --keep              keep repositories, restored trees and the big file (default: delete them at the end)
  -h, --help          this text`;

const workspace = path.resolve(import.meta.dirname, '..', '..');

function parseOptions(): {
  runs: number; sizeText: string; size: number; only: Set<Step>; seed: number; fraction: number; big: number;
  smallFiles: number; dir: string; keep: boolean;
} {
  const { values } = parseArgs({
    options: {
      runs: { type: 'string', default: '3' },
      size: { type: 'string', default: '1.5G' },
      only: { type: 'string' },
      seed: { type: 'string', default: '1' },
      change: { type: 'string', default: '0.01' },
      big: { type: 'string', default: '4G' },
      'small-files': { type: 'string', default: '200000' },
      dir: { type: 'string' },
      keep: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const only = new Set<Step>();
  for (const s of (values.only ?? STEPS.join(',')).split(',').map((x) => x.trim()).filter((x) => x !== '')) {
    if (!(STEPS as readonly string[]).includes(s)) throw new Error(`--only: unknown step ${JSON.stringify(s)}; choose from ${STEPS.join(', ')}`);
    only.add(s as Step);
  }
  const int = (name: string, text: string, min: number): number => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer ≥ ${min}, got ${JSON.stringify(text)}`);
    return n;
  };
  const fraction = Number(values.change);
  if (!(fraction > 0 && fraction < 0.5)) throw new Error(`--change must be a fraction between 0 and 0.5, got ${values.change}`);
  const big = parseSize(values.big);
  if (big % 2 ** 20 !== 0 || big < 128 * 2 ** 20) throw new Error('--big must be a whole number of MiB, at least 128 MiB');
  return {
    runs: int('runs', values.runs, 1),
    sizeText: values.size,
    size: parseSize(values.size),
    only,
    seed: int('seed', values.seed, 0),
    fraction,
    big,
    smallFiles: int('small-files', values['small-files'], 1000),
    dir: path.resolve(values.dir ?? path.join(workspace, '.bench')),
    keep: values.keep,
  };
}

const opts = parseOptions();
const startedAt = new Date();
const stamp = startedAt.toISOString().replace(/[:.]/g, '-');
const benchDir = opts.dir;
const workDir = path.join(benchDir, `work-${stamp}`);
const corpusDir = path.join(benchDir, 'corpus');
const manifestFile = path.join(benchDir, 'corpus.manifest.json');
const undoDir = path.join(benchDir, 'change-undo');
const tmpfsDir = path.join(benchDir, 'tmpfs');
const lockFile = path.join(benchDir, 'bench.lock');
const massDeleteFile = path.join(benchDir, 'last-mass-delete.json');
const labelOf = (bytes: number): string => (bytes % 2 ** 30 === 0 ? `${bytes / 2 ** 30} GiB` : `${bytes / 2 ** 20} MiB`);
const SMALL_BIG_FILE = 64 * 2 ** 20;
const bigFiles = {
  small: path.join(benchDir, 'bigfile', `${SMALL_BIG_FILE / 2 ** 20}MiB.bin`),
  big: path.join(benchDir, 'bigfile', `${opts.big / 2 ** 20}MiB.bin`),
};

const report: Report = {
  startedAt: startedAt.toISOString(),
  finishedAt: '',
  command: `node tools/bench/bench.ts ${process.argv.slice(2).join(' ')}`.trim(),
  options: { runs: opts.runs, size: opts.sizeText, sizeBytes: opts.size, only: [...opts.only], seed: opts.seed, change: opts.fraction, big: opts.big, smallFiles: opts.smallFiles },
  machine: describeMachine({ restic: '', bam: '', bamCommit: '', bamBuildDigestStart: '', bamBuildDigestEnd: '', fileSystems: {} }),
  corpus: {},
  change: {},
  bigFile: { smallLabel: labelOf(SMALL_BIG_FILE), bigLabel: labelOf(opts.big) },
  smallFiles: {},
  notes: [],
  samples: [],
  repoSizes: [],
  verifications: [],
  loadTimeline: [],
};

function log(message: string): void {
  const load = loadAverage();
  report.loadTimeline.push({ at: new Date().toISOString(), what: message, load });
  process.stdout.write(`[${new Date().toISOString().slice(11, 19)} load ${load[0].toFixed(2)}] ${message}\n`);
}

// ---------------------------------------------------------------------------------------------------------------
// Lock, clean-up and signals: only one benchmark at a time (two would spoil each other's numbers and share the
// corpus), and whatever happens the corpus is reverted and the tmpfs unmounted.

let lockHeld = false;

function takeLock(): void {
  fs.mkdirSync(benchDir, { recursive: true });
  try {
    const pid = Number(fs.readFileSync(lockFile, 'utf8'));
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid) {
      try {
        process.kill(pid, 0);
        throw new Error(`another benchmark (pid ${pid}) is running (${lockFile}); wait for it, or remove the file if that process is not a benchmark`);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
      }
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  fs.writeFileSync(lockFile, String(process.pid));
  lockHeld = true;
}

let mountedTmpfs = false;

function isMountPoint(dir: string): boolean {
  return runPlain('findmnt', ['-n', '-M', dir]).code === 0;
}

function unmountTmpfs(): void {
  if (isMountPoint(tmpfsDir)) {
    const r = runPlain('umount', [tmpfsDir]);
    if (r.code !== 0) process.stderr.write(`bench: could not unmount ${tmpfsDir}: ${r.stderr.trim()}\n`);
  }
  mountedTmpfs = false;
}

function noteMassDelete(what: string): void {
  fs.writeFileSync(massDeleteFile, JSON.stringify({ at: new Date().toISOString(), what }));
}

let cleanedUp = false;
function cleanUp(): void {
  if (cleanedUp || !lockHeld) return; // without the lock, the corpus and the tmpfs may be another run's
  cleanedUp = true;
  try {
    if (revertChange(corpusDir, undoDir)) log('reverted the change to the corpus');
  } catch (e) {
    process.stderr.write(`bench: could not revert the change (run again to retry): ${String(e)}\n`);
  }
  if (mountedTmpfs) unmountTmpfs();
  if (!opts.keep) {
    if (fs.existsSync(workDir)) {
      const { files } = treeSize(workDir);
      log(`deleting ${workDir} (repositories, restored trees: ${files} files)`);
      fs.rmSync(workDir, { recursive: true, force: true });
      if (files > 10_000) noteMassDelete(`${workDir} (${files} files)`);
    }
    for (const f of [bigFiles.big, `${bigFiles.big}.meta.json`]) fs.rmSync(f, { force: true });
  }
  fs.rmSync(lockFile, { force: true });
}

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => {
    process.stderr.write(`bench: ${signal}: stopping the measured command and cleaning up\n`);
    stopChildren('SIGTERM');
    setTimeout(() => {
      stopChildren('SIGKILL');
      report.notes.push(`**The benchmark was interrupted (${signal}).**`);
      writeReport();
      cleanUp();
      process.exit(130);
    }, 2000);
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Measuring.

function contextFor(tool: Tool, dir: string): ToolContext {
  return { repo: path.join(dir, `${tool.name}-repo`), state: path.join(dir, `${tool.name}-state`) };
}

function initRepo(tool: Tool, ctx: ToolContext): void {
  fs.mkdirSync(ctx.state, { recursive: true });
  const inv = tool.init(ctx);
  const r = runPlain(inv.cmd, inv.args, inv.env);
  if (r.code !== 0) throw new Error(`${tool.name} init failed (exit ${r.code}): ${(r.stderr || r.stdout).trim().slice(-800)}`);
}

async function measure(
  step: StepId, tool: Tool, run: number, inv: Invocation,
  input: { warm: string[]; bytes: number; files: number; detail?: Record<string, unknown> },
): Promise<Sample> {
  // Dirty pages of the step before (a restore into ext4, a repository just written) are flushed first, untimed:
  // otherwise the kernel's writeback of the previous tool's output runs during this step and is charged to it.
  runPlain('sync', []);
  const warmed = await prewarm(input.warm);
  await prewarm(tool.programPaths);
  const w = tool.warm();
  runPlain(w.cmd, w.args, w.env);
  const cachedBefore = residentFraction(warmed.list);
  const t = await runTimed(inv.cmd, inv.args, inv.env);
  const cachedAfter = residentFraction(warmed.list);
  const ok = t.exitCode === 0 && t.signal === null;
  const sample: Sample = {
    step, tool: tool.name, run, ok, wallS: t.wallS, userS: t.userS, sysS: t.sysS, maxRssKB: t.maxRssKB,
    diskReadBytes: t.diskReadBytes, diskWriteBytes: t.diskWriteBytes,
    bytes: input.bytes, files: input.files, load1Before: t.load1Before, load1After: t.load1After, stealS: t.stealS, startedAt: t.startedAt,
    prewarm: { bytes: warmed.bytes, files: warmed.files, seconds: warmed.seconds },
    cached: { before: cachedBefore, after: cachedAfter },
    detail: { ...input.detail, exitCode: t.exitCode },
  };
  if (!ok) {
    sample.error = `exit ${t.exitCode}${t.signal === null ? '' : `, ${t.signal}`}: ${(t.stderr.trim().split('\n').slice(-3).join(' ') || t.stdout.trim().split('\n').slice(-1)[0]) ?? ''}`;
  }
  if (step.includes('backup') || step.startsWith('bigfile')) {
    const summary = tool.backupSummary(t.stdout);
    if (summary !== undefined) sample.detail['summary'] = summary;
  }
  report.samples.push(sample);
  const rate = input.bytes > 0 ? `, ${(input.bytes / 1e6 / t.wallS).toFixed(1)} MB/s` : input.files > 0 ? `, ${(input.files / t.wallS).toFixed(0)} files/s` : '';
  log(`${step} ${tool.name} run ${run}: ${ok ? 'ok' : `FAILED (${sample.error ?? ''})`} ${t.wallS.toFixed(2)} s wall, ${(t.userS + t.sysS).toFixed(1)} s CPU, ` +
    `${((t.maxRssKB * 1024) / 1e6).toFixed(0)} MB RSS${rate}, ${t.stealS.toFixed(1)} s stolen (warm-up read ${(warmed.bytes / 1e6).toFixed(0)} MB in ${warmed.seconds.toFixed(1)} s; ` +
    `input cached ${(cachedBefore * 100).toFixed(0)}% before, ${(cachedAfter * 100).toFixed(0)}% after; ${(t.diskReadBytes / 1e6).toFixed(0)} MB read from disk)`);
  return sample;
}

async function verifyRestore(tool: Tool, run: number, target: 'tmpfs' | 'ext4', restoredRoot: string, expected: readonly Entry[]): Promise<void> {
  if (!fs.existsSync(restoredRoot)) {
    report.verifications.push({ tool: tool.name, run, target, comparison: compareTrees(expected, [], { checkHash: true }) });
    log(`verify ${tool.name} ${target} run ${run}: nothing restored at ${restoredRoot}`);
    return;
  }
  const actual = await scanTree(restoredRoot, { hash: true });
  const comparison = compareTrees(expected, actual, { checkHash: true });
  report.verifications.push({ tool: tool.name, run, target, comparison });
  log(`verify ${tool.name} ${target} run ${run}: ${comparison.identical ? 'identical' : `DIFFERENT (${comparison.examples.slice(0, 3).join('; ')})`}` +
    `${comparison.mtimeSubMicrosecond > 0 ? `, ${comparison.mtimeSubMicrosecond} file mtimes off by < 1 µs` : ''}` +
    `${comparison.dirMtime > 0 ? `, ${comparison.dirMtime} folder mtimes differ` : ''}`);
}

const repoBytes = (ctx: ToolContext): number => treeSize(ctx.repo).bytes;
const fileBytes = (entries: readonly Entry[]): number => entries.reduce((sum, e) => sum + (e.type === 'file' ? e.size : 0), 0);

async function corpusRun(run: number, tools: Tool[], manifest: CorpusManifest, plan: ChangePlan): Promise<void> {
  const want = opts.only;
  const check = await quickCheck(corpusDir, manifest);
  if (!check.identical) throw new Error(`run ${run}: the corpus does not match its manifest (${check.examples.slice(0, 3).join('; ')}); delete ${manifestFile} to rebuild it`);
  const runDir = path.join(workDir, `run${run}`);
  const ctx = new Map(tools.map((t) => [t.name, contextFor(t, runDir)]));
  const c = (t: Tool): ToolContext => ctx.get(t.name) as ToolContext;
  for (const t of tools) initRepo(t, c(t));
  log(`run ${run}: order ${tools.map((t) => t.name).join(', ')}`);

  // The first backup is always made (every other step needs it); it is reported as a result with `backup`.
  for (const t of tools) {
    await measure('first-backup', t, run, t.backup(c(t), corpusDir), { warm: [corpusDir], bytes: manifest.bytes, files: manifest.files });
  }
  const afterFirst = new Map(tools.map((t) => [t.name, repoBytes(c(t))]));
  if (want.has('rebackup')) {
    for (const t of tools) {
      await measure('rebackup', t, run, t.backup(c(t), corpusDir), { warm: [corpusDir, c(t).repo, c(t).state], bytes: 0, files: manifest.files });
    }
  }
  let expected: readonly Entry[] = manifest.entries;
  try {
    if (want.has('change')) {
      applyChange(corpusDir, plan, undoDir);
      expected = await scanTree(corpusDir, { hash: true });
      log(`run ${run}: applied the change (${plan.ops.length} operations)`);
      for (const t of tools) {
        await measure('change-backup', t, run, t.backup(c(t), corpusDir), { warm: [corpusDir, c(t).repo, c(t).state], bytes: 0, files: 0 });
      }
    }
    const expectedBytes = fileBytes(expected);
    const expectedFiles = expected.filter((e) => e.type === 'file').length;
    if (want.has('restore') && mountedTmpfs) {
      for (const t of tools) {
        const target = path.join(tmpfsDir, `${t.name}-run${run}`);
        const s = await measure('restore-tmpfs', t, run, t.restore(c(t), target), { warm: [c(t).repo, c(t).state], bytes: expectedBytes, files: expectedFiles });
        if (s.ok) await verifyRestore(t, run, 'tmpfs', path.join(target, corpusDir), expected);
        fs.rmSync(target, { recursive: true, force: true }); // tmpfs: no slow-create penalty after a delete
      }
    }
    if (want.has('restore-ext4')) {
      // A folder made now, in this run's fresh work directory; nothing is deleted on ext4 until the very end.
      for (const t of tools) {
        const target = path.join(workDir, 'restore-ext4', `${t.name}-run${run}`);
        fs.mkdirSync(path.dirname(target), { recursive: true });
        const s = await measure('restore-ext4', t, run, t.restore(c(t), target), { warm: [c(t).repo, c(t).state], bytes: expectedBytes, files: expectedFiles });
        if (s.ok) await verifyRestore(t, run, 'ext4', path.join(target, corpusDir), expected);
      }
    }
    if (want.has('check')) {
      for (const t of tools) {
        if (!t.hasReadDataCheck) {
          log(`check ${t.name}: n/a (no read-data check)`);
          continue;
        }
        const bytes = repoBytes(c(t));
        await measure('check', t, run, t.check(c(t)), { warm: [c(t).repo, c(t).state], bytes, files: 0 });
      }
    }
  } finally {
    for (const t of tools) report.repoSizes.push({ tool: t.name, run, afterFirst: afterFirst.get(t.name) ?? 0, final: repoBytes(c(t)) });
    if (revertChange(corpusDir, undoDir)) {
      // A cheap proof the revert worked: the touched files hash as in the manifest.
      const byPath = new Map(manifest.entries.map((e) => [e.path, e]));
      for (const rel of touchedPaths(plan)) {
        const { sha256 } = await hashFile(path.join(corpusDir, rel));
        if (sha256 !== byPath.get(rel)?.sha256) throw new Error(`revert failed: ${rel} does not match the manifest`);
      }
      log(`run ${run}: reverted the change`);
    }
  }
}

async function bigFileRuns(tools: Tool[]): Promise<void> {
  const reusedSmall = ensureBigFile(bigFiles.small, SMALL_BIG_FILE, log);
  const reusedBig = ensureBigFile(bigFiles.big, opts.big, log);
  report.bigFile = { ...report.bigFile, smallBytes: SMALL_BIG_FILE, bigBytes: opts.big, smallReused: reusedSmall, bigReused: reusedBig };
  for (let run = 1; run <= opts.runs; run++) {
    const order = run % 2 === 1 ? tools : [...tools].reverse();
    for (const [step, file, bytes] of [['bigfile-small', bigFiles.small, SMALL_BIG_FILE], ['bigfile-big', bigFiles.big, opts.big]] as const) {
      for (const t of order) {
        const ctx = contextFor(t, path.join(workDir, `${step}-run${run}`));
        initRepo(t, ctx);
        const s = await measure(step, t, run, t.backup(ctx, file), { warm: [file], bytes, files: 1 });
        s.detail['repositoryBytes'] = repoBytes(ctx);
        // A few hundred pack files: not a mass delete, and it keeps the disk from filling up.
        fs.rmSync(ctx.repo, { recursive: true, force: true });
      }
    }
  }
}

async function smallFileRuns(tools: Tool[]): Promise<void> {
  const tree = path.join(benchDir, 'smallfiles', 'tree');
  const { bytes, reused } = ensureSmallTree(tree, opts.smallFiles, log);
  report.smallFiles = { files: opts.smallFiles, bytes, reused, path: tree };
  for (let run = 1; run <= opts.runs; run++) {
    const order = run % 2 === 1 ? tools : [...tools].reverse();
    for (const t of order) {
      const ctx = contextFor(t, path.join(workDir, `smallfiles-run${run}`));
      initRepo(t, ctx);
      await measure('smallfiles-backup', t, run, t.backup(ctx, tree), { warm: [tree], bytes: 0, files: opts.smallFiles, detail: { treeBytes: bytes } });
      await measure('smallfiles-rebackup', t, run, t.backup(ctx, tree), { warm: [tree, ctx.repo, ctx.state], bytes: 0, files: opts.smallFiles, detail: { treeBytes: bytes } });
    }
  }
}

function notes(manifest: CorpusManifest | undefined, bam: Tool | undefined, minutesSinceMassDelete: number | undefined): string[] {
  const n: string[] = [
    'Differences under ~20% are noise here: this is a shared 2-core VM and other processes run (see the load average of every measurement). Rerun with more --runs before acting on a small difference.',
    'Every step reads its input once, untimed, right before it is timed, for both tools (backups: the corpus, and the repository for re-backups; restores and checks: the repository and the tool\'s local state), because this machine drops file pages untouched for about a minute. The figures are therefore warm-cache figures: they leave out cold disk reads.',
    'Both tools run with their defaults: restic 0.14 makes a version 2 repository with compression "auto" (zstd), bam uses zstd level 2; both read the password from the environment; both repositories sit on the same file system. restic\'s local cache lives in a fresh folder per run (RESTIC_CACHE_DIR), bam\'s state in a fresh BACKUP_MANAGER_HOME.',
    'bam `restore` re-hashes every restored file against its SHA-256 as part of its default behaviour; restic 0.14 `restore` does not verify unless given `--verify`. bam does more work per restore by default.',
    'restic runs with RESTIC_PROGRESS_FPS=1 so that its --json progress (60 lines/s by default without a terminal) matches bam\'s one line per second.',
    'Restore throughput is the restored file bytes divided by wall time. The read-data check target compares wall times (restic ÷ bam); its MB/s row divides each tool\'s own repository size by its time.',
    'Restores are timed into a tmpfs (RAM; unaffected by the slow-create-after-mass-delete behaviour of this journal-less ext4) and, separately, into a fresh ext4 folder; no files are deleted on ext4 during a benchmark. Restored trees are compared untimed with a manifest of the source (path, type, size, SHA-256, mode; mtime to 1 µs).',
    'The 1% change gives changed and new files fixed mtimes (in 2001) so the changed corpus is the same in every run; it is reverted (content, size, mtimes, folder mtimes) after each run and the touched files are re-hashed against the manifest.',
    'Peak RSS is GNU time\'s "Maximum resident set size" of the measured process (bam: one Node process with its worker threads; restic: one Go process).',
    'Cache checks: "input cached before → after" is measured with fincore (mincore(2), which does not touch the pages); "read from disk" is GNU time\'s "File system inputs" of the measured process, i.e. reads that missed the page cache. A low "after" means pages were evicted while the step ran (this machine drops file pages, after about a minute untouched or under memory pressure from other processes); "read from disk" shows whether the measured tool itself had to fetch part of its input from the disk.',
  ];
  const cold = report.samples.filter((x) => Number.isFinite(x.diskReadBytes) && x.prewarm.bytes > 0 && x.diskReadBytes > 0.05 * x.prewarm.bytes);
  if (cold.length > 0) {
    n.push(`**Not fully warm:** ${cold.map((x) => `${x.step} ${x.tool} run ${x.run} read ${(x.diskReadBytes / 1e6).toFixed(0)} MB from disk (${((100 * x.diskReadBytes) / x.prewarm.bytes).toFixed(0)}% of its input)`).join('; ')}. These figures include cold reads; compare them with care.`);
  }
  if (bam?.hasReadDataCheck === false) n.push('bam has no `verify --read-data`: its read-data check is reported as n/a.');
  if (opts.runs === 1) n.push('Only one run per tool: there is no spread, and the medians are single measurements.');
  if (minutesSinceMassDelete !== undefined && minutesSinceMassDelete < 20) {
    const firstExt4 = report.samples.find((x) => x.step === 'restore-ext4');
    const gap = firstExt4 === undefined ? undefined : minutesSinceMassDelete + (Date.parse(firstExt4.startedAt) - Date.parse(report.startedAt)) / 60_000;
    n.push(`**Warning:** a benchmark deleted many files on this file system ${minutesSinceMassDelete.toFixed(0)} min before this run started` +
      `${gap === undefined ? '' : ` (${gap.toFixed(0)} min before the first ext4 restore)`}; ext4 creates may have been slowed.`);
  }
  if (report.machine.bamBuildDigestStart !== report.machine.bamBuildDigestEnd && report.machine.bamBuildDigestEnd !== '') {
    n.push('The workspace\'s bam build changed while the benchmark ran (someone rebuilt it). The measurements are not affected: bam ran from a copy of the build taken at the start (freeze.ts), whose digest is in the machine table.');
  }
  if (manifest !== undefined) n.push(`The corpus is a sorted walk of ${manifest.roots.join(', ')} stopped at ${opts.sizeText}; its content depends on what is installed on this machine (its manifest is ${manifestFile}).`);
  return n;
}

/** What the notes need that is only known once main has started. */
const context: { manifest?: CorpusManifest; bam?: Tool; minutesSinceMassDelete?: number } = {};
let reportWritten = false;

async function main(): Promise<void> {
  takeLock();
  log(`bench: ${report.command}; work folder ${workDir}`);
  try {
    const last = JSON.parse(fs.readFileSync(massDeleteFile, 'utf8')) as { at: string };
    const minutes = (Date.now() - Date.parse(last.at)) / 60_000;
    context.minutesSinceMassDelete = minutes;
    if (minutes < 20) log(`warning: a mass delete happened ${minutes.toFixed(0)} min ago; ext4 creates may be slow`);
  } catch {
    // none recorded
  }
  if (isMountPoint(tmpfsDir)) unmountTmpfs(); // left by a benchmark that was killed (we hold the lock)
  if (changePending(undoDir)) {
    log('a previous benchmark left the corpus changed: reverting');
    revertChange(corpusDir, undoDir);
  }
  const workspaceBuild = path.join(workspace, 'apps', 'cli', 'dist', 'main.js');
  if (!fs.existsSync(workspaceBuild)) {
    throw new Error(`${workspaceBuild} is missing: build first (cd ${workspace} && eval "$(scripts/ensure-node.sh)" && npx nx run-many -t build)`);
  }
  fs.mkdirSync(workDir, { recursive: true });
  report.machine.bamBuildDigestStart = await freezeBam(workspace, path.join(workDir, 'bam-build'), log);
  const bam = bamTool(path.join(workDir, 'bam-build'));
  context.bam = bam;
  const restic = resticTool(log);
  report.options['bamHasReadDataCheck'] = bam.hasReadDataCheck;
  report.machine.bam = bam.version;
  report.machine.restic = restic.version;
  report.machine.bamCommit = gitDescription(workspace);
  log(`bam ${bam.version} (verify --read-data: ${bam.hasReadDataCheck ? 'yes' : 'n/a'}); ${restic.version}`);

  try {
    if (CORPUS_STEPS.some((s) => opts.only.has(s))) {
      const corpus = await ensureCorpus({ dir: corpusDir, manifestFile, roots: CORPUS_ROOTS, limitBytes: opts.size, log });
      if (corpus.removedOld) noteMassDelete(corpusDir);
      const manifest = corpus.manifest;
      context.manifest = manifest;
      const { entries: _entries, ...summary } = manifest;
      report.corpus = { ...summary, path: corpusDir, reused: corpus.reused, limit: opts.sizeText, prepareSeconds: corpus.seconds };
      log(`corpus: ${manifest.files} files, ${(manifest.bytes / 1e6).toFixed(0)} MB (${corpus.reused ? 'reused' : `built in ${corpus.seconds.toFixed(0)} s`})`);
      const plan = planChange(manifest.entries, { seed: opts.seed, fraction: opts.fraction });
      report.change = { seed: opts.seed, ...changeStats(plan, manifest.bytes) };
      if (opts.only.has('restore')) {
        fs.mkdirSync(tmpfsDir, { recursive: true });
        const r = runPlain('mount', ['-t', 'tmpfs', '-o', 'size=4g', 'tmpfs', tmpfsDir]);
        if (r.code === 0) mountedTmpfs = true;
        else report.notes.push(`Could not mount a tmpfs at ${tmpfsDir} (${r.stderr.trim()}): no tmpfs restores.`);
      }
      report.machine.fileSystems = {
        corpus: fileSystemOf(corpusDir),
        repositories: fileSystemOf(workDir),
        ...(mountedTmpfs ? { 'restore (tmpfs)': fileSystemOf(tmpfsDir) } : {}),
      };
      for (let run = 1; run <= opts.runs; run++) {
        await corpusRun(run, run % 2 === 1 ? [bam, restic] : [restic, bam], manifest, plan);
      }
      if (mountedTmpfs) unmountTmpfs();
    } else {
      report.machine.fileSystems = { repositories: fileSystemOf(workDir) };
    }
    if (opts.only.has('bigfile')) await bigFileRuns([bam, restic]);
    if (opts.only.has('smallfiles')) await smallFileRuns([bam, restic]);
  } catch (e) {
    report.notes.push(`**The benchmark stopped early:** ${e instanceof Error ? e.message : String(e)}`);
    log(`error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    process.exitCode = 1;
  } finally {
    writeReport();
    cleanUp();
  }
}


function writeReport(): void {
  if (reportWritten || !lockHeld) return;
  reportWritten = true;
  report.machine.bamBuildDigestEnd = buildDigest(workspace);
  report.finishedAt = new Date().toISOString();
  report.notes = [...notes(context.manifest, context.bam, context.minutesSinceMassDelete), ...report.notes];
  const base = path.join(benchDir, `report-${stamp}`);
  fs.writeFileSync(`${base}.json`, `${JSON.stringify(finalize(report), null, 2)}\n`);
  const markdown = toMarkdown(report);
  fs.writeFileSync(`${base}.md`, markdown);
  process.stdout.write(`\n${markdown}\nreport: ${base}.md and ${base}.json\n`);
}

try {
  await main();
} catch (e) {
  process.stderr.write(`bench: ${e instanceof Error ? e.message : String(e)}\n`);
  cleanUp();
  process.exitCode = 1;
}
