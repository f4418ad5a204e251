/**
 * `bam test-recovery` end to end: a healthy snapshot restores and checks out (exit 0, report written, temporary
 * folder removed, history and throughput recorded); a damaged data blob makes it name the exact file (exit 1).
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bam, describeRun, flipByte, hasStackTrace, jsonLines } from './support.ts';
import { REL, blobLocation, makeVerifyFixture } from './verify-support.ts';
import type { VerifyFixture } from './verify-support.ts';

let fx: VerifyFixture;
let tmp: string;
beforeAll(async () => {
  fx = await makeVerifyFixture('recovery');
  tmp = fx.scratch.dir('tmp');
}, 60_000);
afterAll(() => fx?.scratch.cleanup());

const abs = (rel: string): string => path.join(fx.src, rel);

async function run(args: string[], repo: string, code: number): Promise<string> {
  const options = fx.run(repo);
  const r = await bam(args, { ...options, env: { ...options.env, TMPDIR: tmp } });
  expect(r.code, describeRun(args, r)).toBe(code);
  expect(hasStackTrace(r.stdout + r.stderr), describeRun(args, r)).toBe(false);
  return r.stdout;
}

describe('bam test-recovery', () => {
  it('restores the latest snapshot, checks every file, writes the report, removes the folder and records the speed', async () => {
    const out = await run(['test-recovery'], fx.repo, 0);
    expect(out).toMatch(/restored 9 file\(s\)/);
    expect(out).toMatch(/PASSED/);
    expect(fs.readdirSync(tmp)).toEqual([]);
    const reports = fs.readdirSync(path.join(fx.home, 'recovery-tests'));
    expect(reports.filter((f) => f.endsWith('.json'))).toHaveLength(1);
    expect(reports.filter((f) => f.endsWith('.txt'))).toHaveLength(1);

    const sample = jsonLines(await run(['--json', 'test-recovery', 'latest', '--sample', '40', '--compare-source'], fx.repo, 0));
    const doc = sample.find((l) => (l as { type: string }).type === 'recovery-test') as { expected: { files: number }; ok: boolean; sourceComparison: { ok: boolean; compared: number } };
    expect(doc.ok).toBe(true);
    expect(doc.expected.files).toBe(4); // round(9 × 40%)
    expect(doc.sourceComparison.ok).toBe(true);
    expect(doc.sourceComparison.compared).toBeGreaterThan(0);

    const target = path.join(fx.scratch.root, 'kept');
    await run(['test-recovery', fx.snapshot.slice(0, 8), '--path', abs('docs'), '--target', target], fx.repo, 0);
    expect(fs.readFileSync(path.join(target, abs(REL.note)), 'utf8')).toBe('a note\n');
    expect(fs.statSync(path.join(target, abs(REL.note))).mode & 0o777).toBe(0o640);

    const history = jsonLines(await run(['--json', 'verify', 'history'], fx.repo, 0))[0] as { records: { kind: string }[]; lastRestoreThroughput: { bytesPerSecond: number } };
    expect(history.records.filter((r) => r.kind === 'recovery-test')).toHaveLength(3);
    expect(history.lastRestoreThroughput.bytesPerSecond).toBeGreaterThan(0);
    expect(await run(['verify', 'history'], fx.repo, 0)).toMatch(/last measured restore speed/);
  });

  it('names the exact file whose data blob is damaged', async () => {
    const repo = fx.copy('damaged');
    const where = await blobLocation(repo, fx.snapshot, abs(REL.deep));
    flipByte(where.file, where.offset + 64);
    const out = await run(['test-recovery'], repo, 1);
    expect(out).toMatch(/FAILED: 1 entry did not come back intact/);
    expect(out).toContain(`${abs(REL.deep)}: unreadable-data`);
    expect(out).not.toContain(abs(REL.big));
    expect(fs.readdirSync(tmp)).toEqual([]);
  });
});
