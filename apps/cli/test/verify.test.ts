/**
 * `bam verify`, `bam repair`, `bam check-consistency` and `bam verify history` end to end, through the real launcher:
 * a healthy repository passes every check with exit 0, and each kind of damage is detected, named (with the file
 * paths it puts at risk) and exits 1.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bam, describeRun, flipByte, hasStackTrace, jsonLines, repoFiles } from './support.ts';
import { REL, blobLocation, makeVerifyFixture, treePackFiles } from './verify-support.ts';
import type { VerifyFixture } from './verify-support.ts';

let fx: VerifyFixture;
beforeAll(async () => {
  fx = await makeVerifyFixture('verify');
}, 60_000);
afterAll(() => fx?.scratch.cleanup());

const abs = (rel: string): string => path.join(fx.src, rel);

async function expectCode(args: string[], repo: string, code: number): Promise<string> {
  const r = await bam(args, fx.run(repo));
  expect(r.code, describeRun(args, r)).toBe(code);
  expect(hasStackTrace(r.stdout + r.stderr), describeRun(args, r)).toBe(false);
  return r.stdout;
}

describe('a healthy repository', () => {
  it('passes verify in every mode, repair index --dry-run and check-consistency, with exit 0', async () => {
    expect(await expectCode(['verify'], fx.repo, 0)).toMatch(/no errors found/);
    expect(await expectCode(['verify', '--read-data'], fx.repo, 0)).toMatch(/read \d+ pack\(s\)/);
    await expectCode(['verify', '--read-data-subset', '1/3'], fx.repo, 0);
    await expectCode(['verify', '--read-data-subset', '50%'], fx.repo, 0);
    await expectCode(['verify', '--read-data-subset', '100KiB'], fx.repo, 0);
    await expectCode(['verify', '--rotate', '7'], fx.repo, 0);
    expect(fs.existsSync(path.join(fx.home, 'verify-rotation.json'))).toBe(true);
    expect(await expectCode(['repair', 'index', '--dry-run'], fx.repo, 0)).toMatch(/would write new index/);
    const mirror = fx.copy('mirror');
    expect(await expectCode(['check-consistency', '--mirror', mirror], fx.repo, 0)).toMatch(/all copies agree/);

    const history = jsonLines(await expectCode(['--json', 'verify', 'history'], fx.repo, 0))[0] as {
      records: { kind: string; outcome: string; scope: string }[]; latestVerifiedPerSource: { verified: { snapshot: string } | null }[];
    };
    expect(history.records.filter((r) => r.kind === 'verify').map((r) => r.outcome)).toEqual(Array(6).fill('healthy'));
    expect(history.records.map((r) => r.scope)).toContain('read-data all');
    expect(history.latestVerifiedPerSource[0]?.verified?.snapshot).toBe(fx.snapshot);
    const log = fs.readFileSync(path.join(fx.home, 'backup.log'), 'utf8');
    expect(log).toMatch(/"operation":"verify"/);
  });

  it('refuses conflicting modes and a bad subset with a usage error', async () => {
    await expectCode(['verify', '--read-data', '--rotate'], fx.repo, 2);
    await expectCode(['verify', '--read-data-subset', '7/5'], fx.repo, 2);
  });
});

describe('damage is detected, named and exits 1', () => {
  it('one flipped byte inside a pack: --read-data names the damaged blob and the file', async () => {
    const repo = fx.copy('flip');
    const where = await blobLocation(repo, fx.snapshot, abs(REL.big));
    flipByte(where.file, where.offset + 50);
    const out = await expectCode(['verify', '--read-data'], repo, 1);
    expect(out).toMatch(/error: \[corrupt-blob\]/);
    expect(out).toContain(abs(REL.big));
    // --json: one finding line naming the pack, then the summary with the affected path
    const lines = jsonLines(await expectCode(['--json', 'verify', '--read-data'], repo, 1)) as { type: string; kind?: string; pack?: string; findings?: { affects?: { paths: string[] }[] }[] }[];
    const finding = lines.find((l) => l.type === 'finding');
    expect(finding).toMatchObject({ kind: 'corrupt-blob', pack: where.pack });
    const summary = lines.find((l) => l.type === 'summary')!;
    expect(summary.findings![0]!.affects![0]!.paths).toEqual([abs(REL.big)]);
  });

  it('a truncated pack', async () => {
    const repo = fx.copy('truncate');
    const where = await blobLocation(repo, fx.snapshot, abs(REL.deep));
    fs.truncateSync(where.file, where.offset + 100);
    const out = await expectCode(['verify'], repo, 1);
    expect(out).toMatch(/\[corrupt-pack-header\]/);
    expect(out).toContain(abs(REL.deep));
  });

  it('a deleted pack, then repair index and repair snapshots keep the rest', async () => {
    const repo = fx.copy('delete');
    const where = await blobLocation(repo, fx.snapshot, abs(REL.deep));
    fs.rmSync(where.file);
    const out = await expectCode(['verify'], repo, 1);
    expect(out).toMatch(/\[missing-pack\] pack [0-9a-f]{8}/);
    expect(out).toContain(abs(REL.deep));

    await expectCode(['repair', 'index'], repo, 0);
    const plan = await expectCode(['repair', 'snapshots', '--dry-run'], repo, 0);
    expect(plan).toContain(abs(REL.deep));
    expect(plan).toMatch(/would write/);
    expect(repoFiles(repo, 'snapshots')).toHaveLength(1);
    expect(await expectCode(['repair', 'snapshots'], repo, 0)).toMatch(/wrote 1 repaired snapshot/);
    const snaps = JSON.parse(await expectCode(['--json', 'snapshots'], repo, 0)) as { id: string; repaired?: boolean; original?: string }[];
    expect(snaps).toHaveLength(2);
    const repaired = snaps.find((s) => s.repaired)!;
    expect(repaired.original).toBe(fx.snapshot);
    // The repaired snapshot restores intact (without the lost file).
    expect(await expectCode(['test-recovery', repaired.id], repo, 0)).toMatch(/PASSED/);
  });

  it('a corrupted index file, which repair index fixes', async () => {
    const repo = fx.copy('index');
    const index = repoFiles(repo, 'index')[0]!;
    flipByte(path.join(repo, index), 40);
    const out = await expectCode(['verify'], repo, 1);
    expect(out).toMatch(/\[unreadable-index\] index file [0-9a-f]{8}/);
    expect(out).toContain(abs(REL.big));
    expect(await expectCode(['repair', 'index'], repo, 0)).toMatch(/wrote 1 index file/);
    await expectCode(['verify', '--read-data'], repo, 0);
  });

  it('a corrupted snapshot file', async () => {
    const repo = fx.copy('snapshot');
    flipByte(path.join(repo, 'snapshots', fx.snapshot), 33);
    const out = await expectCode(['verify'], repo, 1);
    expect(out).toContain(`[unreadable-snapshot] snapshot ${fx.snapshot.slice(0, 8)}`);
  });

  it('a missing tree blob (its pack deleted and the index rebuilt without it)', async () => {
    const repo = fx.copy('tree');
    for (const f of await treePackFiles(repo)) fs.rmSync(f);
    await expectCode(['repair', 'index'], repo, 0);
    const out = await expectCode(['verify'], repo, 1);
    expect(out).toMatch(/\[missing-blob\] directory listing \(tree blob [0-9a-f]{8}\)/);
    expect(out).toMatch(new RegExp(`snapshot ${fx.snapshot.slice(0, 8)} .*: /\\n`));
  });

  it('check-consistency names what a damaged mirror lacks or holds wrongly', async () => {
    const mirror = fx.copy('bad-mirror');
    const packs = repoFiles(mirror, 'data');
    fs.rmSync(path.join(mirror, packs[0]!));
    flipByte(path.join(mirror, packs[1]!), 7);
    const out = await expectCode(['check-consistency', '--mirror', mirror], fx.repo, 1);
    expect(out).toContain(`missing here (1)`);
    expect(out).toContain(path.basename(packs[0]!));
    expect(out).toMatch(/its content does not match its name/);
  });
});
