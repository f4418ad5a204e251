/**
 * From samples to a verdict: medians and spread per step and tool, bam/restic ratios, the issue's targets as
 * pass/fail, the machine's description and the load at every step, written as markdown for people and JSON for
 * programs. Differences under NOISE (20%) are called noise: on a shared 2-core VM that is what they are.
 */
import fs from 'node:fs';
import os from 'node:os';
import type { Comparison } from './corpus.ts';
import type { ToolName } from './run.ts';
import { runPlain } from './run.ts';

export const NOISE = 0.2;
export const MB = 1e6;

export type StepId =
  | 'first-backup'
  | 'rebackup'
  | 'change-backup'
  | 'restore-tmpfs'
  | 'restore-ext4'
  | 'check'
  | 'bigfile-small'
  | 'bigfile-big'
  | 'smallfiles-backup'
  | 'smallfiles-rebackup';

export type Sample = {
  step: StepId;
  tool: ToolName;
  run: number;
  ok: boolean;
  wallS: number;
  userS: number;
  sysS: number;
  maxRssKB: number;
  /** Reads that missed the page cache and writes that reached the storage layer (GNU time, 512-byte blocks). */
  diskReadBytes: number;
  diskWriteBytes: number;
  /** Logical bytes the step moved (corpus bytes for backup and restore, repository bytes for check). */
  bytes: number;
  files: number;
  load1Before: number;
  load1After: number;
  /** CPU seconds taken by the hypervisor for other guests during the step (absent in reports made before it was kept) */
  stealS?: number;
  startedAt: string;
  prewarm: { bytes: number; files: number; seconds: number };
  /** Fraction of the step's input (without the program files) in the page cache right before and after the step. */
  cached: { before: number; after: number };
  detail: Record<string, unknown>;
  error?: string;
};

export type RepoSize = { tool: ToolName; run: number; afterFirst: number; final: number };
export type Verification = { tool: ToolName; run: number; target: 'tmpfs' | 'ext4'; comparison: Comparison };

export type Machine = {
  cpu: string;
  cores: number;
  ramBytes: number;
  kernel: string;
  os: string;
  node: string;
  restic: string;
  bam: string;
  bamCommit: string;
  bamBuildDigestStart: string;
  bamBuildDigestEnd: string;
  fileSystems: Record<string, string>;
  hostname: string;
};

export type Report = {
  startedAt: string;
  finishedAt: string;
  command: string;
  options: Record<string, unknown>;
  machine: Machine;
  corpus: Record<string, unknown>;
  change: Record<string, unknown>;
  bigFile: Record<string, unknown>;
  smallFiles: Record<string, unknown>;
  notes: string[];
  samples: Sample[];
  repoSizes: RepoSize[];
  verifications: Verification[];
  loadTimeline: { at: string; what: string; load: [number, number, number] }[];
  summary?: SummaryRow[];
  targets?: TargetRow[];
};

export function describeMachine(extra: Omit<Machine, 'cpu' | 'cores' | 'ramBytes' | 'kernel' | 'os' | 'node' | 'hostname'>): Machine {
  const cpuinfo = fs.existsSync('/proc/cpuinfo') ? fs.readFileSync('/proc/cpuinfo', 'utf8') : '';
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? os.cpus()[0]?.model ?? 'unknown';
  const osRelease = fs.existsSync('/etc/os-release') ? /^PRETTY_NAME="?([^"\n]+)"?/m.exec(fs.readFileSync('/etc/os-release', 'utf8'))?.[1] : undefined;
  return {
    cpu: model.trim(),
    cores: os.availableParallelism(),
    ramBytes: os.totalmem(),
    kernel: `${os.type()} ${os.release()} ${os.machine()}`,
    os: osRelease ?? 'unknown',
    node: process.version,
    hostname: os.hostname(),
    ...extra,
  };
}

/** The git commit of the checkout, with "+ uncommitted changes" when the tree is dirty. Read-only git commands. */
export function gitDescription(workspace: string): string {
  const head = runPlain('git', ['-C', workspace, 'rev-parse', '--short=12', 'HEAD']).stdout.trim() || 'unknown';
  const dirty = runPlain('git', ['-C', workspace, 'status', '--porcelain', '--untracked-files=no']).stdout.trim() !== '';
  return dirty ? `${head} + uncommitted changes` : head;
}

export function median(values: readonly number[]): number {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return Number.NaN;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 === 1 ? (v[mid] as number) : ((v[mid - 1] as number) + (v[mid] as number)) / 2;
}

/** min, max and the half-range as a fraction of the median; NaN spread with one value. */
export function spread(values: readonly number[]): { n: number; min: number; max: number; relative: number } {
  const v = values.filter((x) => Number.isFinite(x));
  if (v.length === 0) return { n: 0, min: Number.NaN, max: Number.NaN, relative: Number.NaN };
  const min = Math.min(...v);
  const max = Math.max(...v);
  const m = median(v);
  return { n: v.length, min, max, relative: v.length > 1 && m !== 0 ? (max - min) / 2 / m : Number.NaN };
}

/** "1.5G", "1500M", "2GiB", "64MiB", "123" (bytes): binary units. */
export function parseSize(text: string): number {
  const m = /^\s*([0-9]+(?:\.[0-9]+)?)\s*([kKmMgGtT]?)(?:i?[bB])?\s*$/.exec(text);
  if (m === null) throw new Error(`not a size: ${JSON.stringify(text)} (write e.g. 1.5G, 800M, 64MiB)`);
  const power = { '': 0, k: 1, m: 2, g: 3, t: 4 }[(m[2] ?? '').toLowerCase() as '' | 'k' | 'm' | 'g' | 't'];
  return Math.round(Number(m[1]) * 1024 ** power);
}

const fmt = (x: number, digits = 1): string => (Number.isFinite(x) ? x.toFixed(digits) : 'n/a');
const pct = (x: number): string => (Number.isFinite(x) ? `${(x * 100).toFixed(0)}%` : 'n/a');

type Metric = { values: number[]; digits: number };

/** Direction of "better": a throughput wants high, a time or a size low. */
type Better = 'higher' | 'lower';

export type SummaryRow = {
  measure: string;
  better: Better;
  bam: { median: number; min: number; max: number; n: number };
  restic: { median: number; min: number; max: number; n: number };
  /** bam ÷ restic of the medians. */
  ratio: number;
  reading: string;
};

export type TargetRow = { target: string; measured: string; threshold: string; result: 'PASS' | 'FAIL' | 'n/a'; note: string };

function row(measure: string, better: Better, bam: Metric, restic: Metric): SummaryRow & { digits: number } {
  const sb = spread(bam.values);
  const sr = spread(restic.values);
  const mb = median(bam.values);
  const mr = median(restic.values);
  const ratio = mb / mr;
  let reading = 'n/a';
  if (Number.isFinite(ratio) && ratio > 0) {
    const bamBetter = better === 'higher' ? ratio > 1 : ratio < 1;
    const factor = ratio >= 1 ? ratio : 1 / ratio;
    if (Math.abs(factor - 1) < NOISE) reading = 'same within noise (<20%)';
    else reading = `${bamBetter ? 'bam' : 'restic'} better by ${factor.toFixed(2)}×`;
  }
  return {
    measure, better, digits: bam.digits, ratio, reading,
    bam: { median: mb, min: sb.min, max: sb.max, n: sb.n },
    restic: { median: mr, min: sr.min, max: sr.max, n: sr.n },
  };
}

const cell = (s: { median: number; min: number; max: number; n: number }, digits: number): string => {
  if (s.n === 0) return 'n/a';
  if (s.n === 1) return fmt(s.median, digits);
  return `${fmt(s.median, digits)} [${fmt(s.min, digits)}–${fmt(s.max, digits)}]`;
};

function values(samples: readonly Sample[], step: StepId, tool: ToolName, f: (s: Sample) => number): number[] {
  return samples.filter((s) => s.step === step && s.tool === tool && s.ok).map(f);
}

const mbps = (s: Sample): number => s.bytes / MB / s.wallS;
const rssMB = (s: Sample): number => (s.maxRssKB * 1024) / MB;

/** Near a threshold (within the noise band) a PASS or FAIL can flip on a rerun: say so. */
function closeness(measuredRatio: number, threshold: number): string {
  if (!Number.isFinite(measuredRatio)) return '';
  return Math.abs(measuredRatio / threshold - 1) < NOISE ? 'within 20% of the threshold: noise could flip it' : '';
}

function targetRatio(name: string, ratio: number, op: '>=' | '<=', threshold: number, measured: string): TargetRow {
  if (!Number.isFinite(ratio)) return { target: name, measured: 'n/a', threshold: `${op === '>=' ? '≥' : '≤'} ${threshold}×`, result: 'n/a', note: 'not measured' };
  const pass = op === '>=' ? ratio >= threshold : ratio <= threshold;
  return { target: name, measured, threshold: `${op === '>=' ? '≥' : '≤'} ${threshold}×`, result: pass ? 'PASS' : 'FAIL', note: closeness(ratio, threshold) };
}

/** Builds the summary rows and the target verdicts from the samples. */
export function analyse(report: Report): { rows: (SummaryRow & { digits: number })[]; targets: TargetRow[] } {
  const s = report.samples;
  const both = (step: StepId, f: (x: Sample) => number, digits: number): [Metric, Metric] => [
    { values: values(s, step, 'bam', f), digits },
    { values: values(s, step, 'restic', f), digits },
  ];
  const sizes = (tool: ToolName, k: 'afterFirst' | 'final'): number[] => report.repoSizes.filter((r) => r.tool === tool && r[k] > 0).map((r) => r[k] / MB);
  const corpusSteps: StepId[] = ['first-backup', 'rebackup', 'change-backup', 'restore-tmpfs', 'restore-ext4', 'check'];
  const peakRss = (tool: ToolName): number[] => {
    const runs = [...new Set(s.filter((x) => x.tool === tool && corpusSteps.includes(x.step)).map((x) => x.run))];
    return runs.map((run) => Math.max(...s.filter((x) => x.tool === tool && x.run === run && x.ok && corpusSteps.includes(x.step)).map(rssMB)));
  };
  const rows = [
    row('first backup, throughput (MB/s)', 'higher', ...both('first-backup', mbps, 1)),
    row('first backup, wall (s)', 'lower', ...both('first-backup', (x) => x.wallS, 1)),
    row('first backup, CPU user+sys (s)', 'lower', ...both('first-backup', (x) => x.userS + x.sysS, 1)),
    row('first backup, peak RSS (MB)', 'lower', ...both('first-backup', rssMB, 0)),
    row('re-backup, no change, wall (s)', 'lower', ...both('rebackup', (x) => x.wallS, 2)),
    row('re-backup, no change, peak RSS (MB)', 'lower', ...both('rebackup', rssMB, 0)),
    row('backup after the 1% change, wall (s)', 'lower', ...both('change-backup', (x) => x.wallS, 2)),
    row('backup after the 1% change, peak RSS (MB)', 'lower', ...both('change-backup', rssMB, 0)),
    row('full restore to tmpfs (MB/s)', 'higher', ...both('restore-tmpfs', mbps, 1)),
    row('full restore to tmpfs, peak RSS (MB)', 'lower', ...both('restore-tmpfs', rssMB, 0)),
    row('full restore to fresh ext4 folder (MB/s)', 'higher', ...both('restore-ext4', mbps, 1)),
    row('read-data check, wall (s)', 'lower', ...both('check', (x) => x.wallS, 1)),
    row('read-data check (MB/s of repository read)', 'higher', ...both('check', mbps, 1)),
    row('read-data check, peak RSS (MB)', 'lower', ...both('check', rssMB, 0)),
    row('repository size after the first backup (MB)', 'lower', { values: sizes('bam', 'afterFirst'), digits: 1 }, { values: sizes('restic', 'afterFirst'), digits: 1 }),
    row('repository size after all three backups (MB)', 'lower', { values: sizes('bam', 'final'), digits: 1 }, { values: sizes('restic', 'final'), digits: 1 }),
    row('peak RSS over all corpus steps (MB)', 'lower', { values: peakRss('bam'), digits: 0 }, { values: peakRss('restic'), digits: 0 }),
    row(`one ${report.bigFile['smallLabel'] as string} file: backup (MB/s)`, 'higher', ...both('bigfile-small', mbps, 1)),
    row(`one ${report.bigFile['smallLabel'] as string} file: peak RSS (MB)`, 'lower', ...both('bigfile-small', rssMB, 0)),
    row(`one ${report.bigFile['bigLabel'] as string} file: backup (MB/s)`, 'higher', ...both('bigfile-big', mbps, 1)),
    row(`one ${report.bigFile['bigLabel'] as string} file: peak RSS (MB)`, 'lower', ...both('bigfile-big', rssMB, 0)),
    row(`${String(report.smallFiles['files'])} small files: first backup (files/s)`, 'higher', ...both('smallfiles-backup', (x) => x.files / x.wallS, 0)),
    row(`${String(report.smallFiles['files'])} small files: first backup, peak RSS (MB)`, 'lower', ...both('smallfiles-backup', rssMB, 0)),
    row(`${String(report.smallFiles['files'])} small files: re-backup, no change (files/s)`, 'higher', ...both('smallfiles-rebackup', (x) => x.files / x.wallS, 0)),
    row(`${String(report.smallFiles['files'])} small files: re-backup, peak RSS (MB)`, 'lower', ...both('smallfiles-rebackup', rssMB, 0)),
  ];
  const find = (measure: string): SummaryRow | undefined => rows.find((r) => r.measure === measure);
  const ratioOf = (measure: string): number => find(measure)?.ratio ?? Number.NaN;
  const x = (r: number): string => `${fmt(r, 2)}×`;

  const targets: TargetRow[] = [];
  const tp = ratioOf('first backup, throughput (MB/s)');
  targets.push(targetRatio('first backup throughput ≥ 1.5× restic', tp, '>=', 1.5, x(tp)));
  const rb = ratioOf('re-backup, no change, wall (s)');
  targets.push(targetRatio('re-backup with no change ≤ 0.8× restic time', rb, '<=', 0.8, x(rb)));
  const rt = ratioOf('full restore to tmpfs (MB/s)');
  targets.push(targetRatio('restore throughput ≥ 1.5× restic (tmpfs)', rt, '>=', 1.5, x(rt)));
  const re = ratioOf('full restore to fresh ext4 folder (MB/s)');
  targets.push(targetRatio('restore throughput ≥ 1.5× restic (fresh ext4, secondary)', re, '>=', 1.5, x(re)));
  const ck = 1 / ratioOf('read-data check, wall (s)');
  const checkRow = targetRatio('read-data check ≥ 1.5× restic (restic time ÷ bam time)', ck, '>=', 1.5, x(ck));
  if (report.options['bamHasReadDataCheck'] === false) {
    checkRow.measured = 'n/a';
    checkRow.result = 'n/a';
    checkRow.note = 'bam has no `verify --read-data`';
  }
  targets.push(checkRow);
  const sz = ratioOf('repository size after all three backups (MB)');
  const sizeRow = targetRatio('repository size ≤ 1.05× restic', sz, '<=', 1.05, x(sz));
  // Sizes do not depend on load: only a hair's breadth from the threshold is worth a note.
  sizeRow.note = Number.isFinite(sz) && Math.abs(sz / 1.05 - 1) < 0.02 ? 'within 2% of the threshold' : '';
  targets.push(sizeRow);
  const rss = find('peak RSS over all corpus steps (MB)')?.bam.median ?? Number.NaN;
  targets.push(
    Number.isFinite(rss)
      ? { target: 'bam peak RSS ≤ 200 MB on the corpus', measured: `${fmt(rss, 0)} MB`, threshold: '≤ 200 MB', result: rss <= 200 ? 'PASS' : 'FAIL', note: Math.abs(rss / 200 - 1) < 0.1 ? 'within 10% of the threshold' : '' }
      : { target: 'bam peak RSS ≤ 200 MB on the corpus', measured: 'n/a', threshold: '≤ 200 MB', result: 'n/a', note: 'not measured' },
  );
  const small = find(`one ${report.bigFile['smallLabel'] as string} file: peak RSS (MB)`)?.bam.median ?? Number.NaN;
  const big = find(`one ${report.bigFile['bigLabel'] as string} file: peak RSS (MB)`)?.bam.median ?? Number.NaN;
  const growth = big - small;
  targets.push(
    Number.isFinite(growth)
      ? { target: `the ${report.bigFile['bigLabel'] as string} file adds < 50 MB RSS over the ${report.bigFile['smallLabel'] as string} file (bam)`, measured: `${fmt(growth, 0)} MB (${fmt(small, 0)} → ${fmt(big, 0)})`, threshold: '< 50 MB', result: growth < 50 ? 'PASS' : 'FAIL', note: '' }
      : { target: 'big file adds < 50 MB RSS (bam)', measured: 'n/a', threshold: '< 50 MB', result: 'n/a', note: 'not measured' },
  );
  return { rows, targets };
}

const human = (bytes: number): string =>
  bytes >= 1e9 ? `${(bytes / 1e9).toFixed(2)} GB` : bytes >= 1e6 ? `${(bytes / 1e6).toFixed(1)} MB` : `${(bytes / 1e3).toFixed(1)} kB`;

export function toMarkdown(report: Report): string {
  const { rows, targets } = analyse(report);
  const m = report.machine;
  const lines: string[] = [];
  const runs = Number(report.options['runs']);
  lines.push(`# bam vs restic: benchmark report, ${report.startedAt}`, '');
  lines.push(`Command: \`${report.command}\` — ${String(runs)} run(s) per tool, tools alternated run by run (odd runs bam first, even runs restic first).`, '');
  lines.push('## Machine', '');
  lines.push('| | |', '| --- | --- |');
  lines.push(`| CPU | ${m.cpu}, ${m.cores} cores |`);
  lines.push(`| RAM | ${(m.ramBytes / 2 ** 30).toFixed(1)} GiB |`);
  lines.push(`| kernel / OS | ${m.kernel} / ${m.os} |`);
  lines.push(`| Node | ${m.node} |`);
  lines.push(`| restic | ${m.restic} |`);
  lines.push(`| bam | ${m.bam}, commit ${m.bamCommit}; measured: a frozen copy of the build, digest ${m.bamBuildDigestStart.slice(0, 12)}${m.bamBuildDigestEnd === m.bamBuildDigestStart ? ' (the workspace build did not change during the run)' : ` (the workspace build changed to ${m.bamBuildDigestEnd.slice(0, 12)} during the run; not measured)`} |`);
  for (const [what, fsDesc] of Object.entries(m.fileSystems)) lines.push(`| file system: ${what} | ${fsDesc} |`);
  lines.push('');
  const c = report.corpus;
  if (c['files'] !== undefined) {
    const comp = c['composition'] as Record<string, { files: number; bytes: number }>;
    lines.push('## Inputs', '');
    lines.push(`- Corpus: ${String(c['files'])} files, ${String(c['dirs'])} folders, ${String(c['symlinks'])} symlinks, ${human(Number(c['bytes']))} (${String(c['path'])}; ${c['reused'] === true ? 'reused' : 'built'}), a sorted walk of ${(c['roots'] as string[]).join(', ')} stopped at ${String(c['limit'])}.`);
    lines.push(`  Mix by content: ${Object.entries(comp).map(([k, v]) => `${k} ${v.files} files / ${human(v.bytes)}`).join('; ')}.`);
  }
  const ch = report.change;
  if (ch['totalBytes'] !== undefined) {
    const part = (k: string): string => {
      const v = ch[k] as { count: number; bytes: number };
      return `${v.count} ${k}s (${human(v.bytes)})`;
    };
    lines.push(`- The 1% change (seed ${String(ch['seed'])}): ${part('append')}, ${part('overwrite')} inside large files, ${part('create')} of new files, ${part('delete')}: ${human(Number(ch['totalBytes']))} = ${(Number(ch['fraction']) * 100).toFixed(2)}% of the corpus; reverted after each run.`);
  }
  if (report.bigFile['bigBytes'] !== undefined) {
    lines.push(`- Big files: ${String(report.bigFile['smallLabel'])} and ${String(report.bigFile['bigLabel'])} of a repeated 64 MiB AES-CTR block with a unique 16-byte header every 64 KiB (so chunks do not dedupe; see synthetic.ts).`);
  }
  if (report.smallFiles['files'] !== undefined) {
    lines.push(`- Small files: ${String(report.smallFiles['files'])} files of 0–2 KiB in folders of 1000, ${human(Number(report.smallFiles['bytes']))}.`);
  }
  lines.push('');
  lines.push('## Results (median [min–max] over runs; MB = 10^6 bytes)', '');
  lines.push('| measure | bam | restic | bam/restic | reading |', '| --- | ---: | ---: | ---: | --- |');
  for (const r of rows) {
    if (r.bam.n === 0 && r.restic.n === 0) continue;
    lines.push(`| ${r.measure} | ${cell(r.bam, r.digits)} | ${cell(r.restic, r.digits)} | ${fmt(r.ratio, 2)} | ${r.reading} |`);
  }
  lines.push('');
  lines.push('## Targets (issue 3)', '');
  lines.push('| target | measured (bam/restic) | threshold | result | note |', '| --- | ---: | ---: | :---: | --- |');
  for (const t of targets) lines.push(`| ${t.target} | ${t.measured} | ${t.threshold} | ${t.result} | ${t.note} |`);
  lines.push('');
  if (report.verifications.length > 0) {
    lines.push('## Restored trees compared with the source (untimed; path, type, size, SHA-256, mode, mtime to 1 µs)', '');
    lines.push('| tool | run | target | identical | entries | missing | extra | content/size | mode | mtime > 1 µs | mtime < 1 µs off | folder mtime |', '| --- | ---: | --- | :---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
    for (const v of report.verifications) {
      const k = v.comparison;
      lines.push(`| ${v.tool} | ${v.run} | ${v.target} | ${k.identical ? 'yes' : '**NO**'} | ${k.compared} | ${k.missing} | ${k.extra} | ${k.sha256 + k.size + k.type + k.target} | ${k.mode} | ${k.mtime} | ${k.mtimeSubMicrosecond} | ${k.dirMtime} |`);
    }
    lines.push('');
  }
  lines.push('## Every measurement, with the load average (1 min) before → after and the CPU time stolen by the hypervisor', '');
  lines.push('| step | tool | run | ok | wall s | CPU s | stolen s | peak RSS MB | MB/s | load 1m | warm-up read | input cached before → after | read from disk MB | started |', '| --- | --- | ---: | :---: | ---: | ---: | ---: | ---: | ---: | --- | --- | --- | ---: | --- |');
  for (const x of report.samples) {
    const rate = x.bytes > 0 ? fmt(x.bytes / MB / x.wallS, 1) : x.files > 0 ? `${fmt(x.files / x.wallS, 0)} files/s` : '';
    lines.push(`| ${x.step} | ${x.tool} | ${x.run} | ${x.ok ? 'yes' : `**no**: ${(x.error ?? '').replace(/\|/g, '/').slice(0, 120)}`} | ${fmt(x.wallS, 2)} | ${fmt(x.userS + x.sysS, 1)} | ${fmt(x.stealS ?? Number.NaN, 1)} | ${fmt(rssMB(x), 0)} | ${rate} | ${fmt(x.load1Before, 2)} → ${fmt(x.load1After, 2)} | ${human(x.prewarm.bytes)} in ${fmt(x.prewarm.seconds, 1)} s | ${pct(x.cached.before)} → ${pct(x.cached.after)} | ${fmt(x.diskReadBytes / MB, 0)} | ${x.startedAt.slice(11, 19)} |`);
  }
  lines.push('');
  if (report.repoSizes.length > 0) {
    lines.push('## Repository sizes (apparent bytes of all files)', '');
    lines.push('| tool | run | after first backup | after all three backups |', '| --- | ---: | ---: | ---: |');
    for (const r of report.repoSizes) lines.push(`| ${r.tool} | ${r.run} | ${human(r.afterFirst)} | ${human(r.final)} |`);
    lines.push('');
  }
  lines.push('## How to read this', '');
  for (const n of report.notes) lines.push(`- ${n}`);
  lines.push('');
  return lines.join('\n');
}

export function finalize(report: Report): Report {
  const { rows, targets } = analyse(report);
  return { ...report, summary: rows.map(({ digits: _digits, ...r }) => r), targets };
}
