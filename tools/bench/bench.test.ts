import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { applyChange, changePending, changeStats, planChange, revertChange } from './change.ts';
import { compareTrees, scanTree } from './corpus.ts';
import type { Entry } from './corpus.ts';
import { median, parseSize, spread } from './report.ts';
import { ensureBigFile } from './synthetic.ts';

const temps: string[] = [];
function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bam-bench-test-'));
  temps.push(dir);
  return dir;
}
afterEach(() => {
  for (const d of temps.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function makeTree(root: string): void {
  for (let d = 0; d < 5; d++) {
    const dir = path.join(root, `d${d}`, 'sub');
    fs.mkdirSync(dir, { recursive: true });
    for (let f = 0; f < 20; f++) fs.writeFileSync(path.join(dir, `f${f}.txt`), 'x'.repeat(100 + f * 37 + d * 1000));
  }
  fs.writeFileSync(path.join(root, 'large.bin'), Buffer.alloc(3 * 2 ** 20, 7));
  fs.symlinkSync('d0/sub/f0.txt', path.join(root, 'link'));
  for (const e of fs.readdirSync(root, { recursive: true }) as string[]) {
    const p = path.join(root, e);
    if (!fs.lstatSync(p).isSymbolicLink()) fs.utimesSync(p, 1_600_000_000, 1_600_000_000);
  }
  fs.utimesSync(root, 1_600_000_000, 1_600_000_000);
}

describe('the 1% change', () => {
  it('changes the tree in every way it promises and reverts it exactly', async () => {
    const root = tempDir();
    const undo = path.join(tempDir(), 'undo');
    makeTree(root);
    const before = await scanTree(root, { hash: true });
    const plan = planChange(before, { seed: 3, fraction: 0.05 });
    expect(new Set(plan.ops.map((o) => o.kind))).toEqual(new Set(['append', 'overwrite', 'create', 'delete']));

    applyChange(root, plan, undo);
    expect(changePending(undo)).toBe(true);
    const changed = await scanTree(root, { hash: true });
    const diff = compareTrees(before, changed, { checkHash: true });
    expect(diff.identical).toBe(false);
    expect(diff.missing).toBeGreaterThan(0);
    expect(diff.extra).toBeGreaterThan(0);
    expect(diff.sha256 + diff.size).toBeGreaterThan(0);

    expect(revertChange(root, undo)).toBe(true);
    const after = await scanTree(root, { hash: true });
    const back = compareTrees(before, after, { checkHash: true });
    expect(back.examples).toEqual([]);
    expect(back.identical && back.dirMtime === 0).toBe(true);
    expect(revertChange(root, undo)).toBe(false);
  });

  it('is the same plan and the same changed tree for the same seed', async () => {
    const a = tempDir();
    const b = tempDir();
    makeTree(a);
    makeTree(b);
    const plan = planChange(await scanTree(a, { hash: true }), { seed: 9, fraction: 0.02 });
    expect(planChange(await scanTree(b, { hash: true }), { seed: 9, fraction: 0.02 })).toEqual(plan);
    applyChange(a, plan, path.join(tempDir(), 'u'));
    applyChange(b, plan, path.join(tempDir(), 'u'));
    const cmp = compareTrees(await scanTree(a, { hash: true }), await scanTree(b, { hash: true }), { checkHash: true });
    expect(cmp.identical).toBe(true);
    expect(changeStats(plan, 1).totalBytes).toBeGreaterThan(0);
  });
});

describe('compareTrees', () => {
  const file = (p: string, extra: Partial<Entry> = {}): Entry => ({ path: p, type: 'file', size: 1, mode: 0o644, mtimeNs: '1000000000000', sha256: 'a', ...extra });
  it('tolerates sub-microsecond mtime drift but counts it, and catches real differences', () => {
    const cmp = compareTrees([file('a'), file('b'), file('c')], [file('a', { mtimeNs: '1000000000476' }), file('b', { mode: 0o600 }), file('c', { sha256: 'b' })], { checkHash: true });
    expect(cmp.mtimeSubMicrosecond).toBe(1);
    expect(cmp.mode).toBe(1);
    expect(cmp.sha256).toBe(1);
    expect(cmp.identical).toBe(false);
    expect(compareTrees([file('a')], [file('a', { mtimeNs: '1000000000476' })], { checkHash: true }).identical).toBe(true);
  });
});

describe('statistics and sizes', () => {
  it('takes medians and spreads', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 2, 3])).toBe(2.5);
    expect(spread([9, 10, 11])).toEqual({ n: 3, min: 9, max: 11, relative: 0.1 });
    expect(Number.isNaN(spread([5]).relative)).toBe(true);
  });
  it('parses binary sizes', () => {
    expect(parseSize('1.5G')).toBe(1.5 * 2 ** 30);
    expect(parseSize('64MiB')).toBe(64 * 2 ** 20);
    expect(parseSize('4g')).toBe(4 * 2 ** 30);
    expect(parseSize('100')).toBe(100);
    expect(() => parseSize('lots')).toThrow(/not a size/);
  });
});

describe('the big file', () => {
  it('has a distinct header every 64 KiB, so repeated blocks do not dedupe', () => {
    const file = path.join(tempDir(), 'big.bin');
    expect(ensureBigFile(file, 2 * 2 ** 20, () => {})).toBe(false);
    const data = fs.readFileSync(file);
    expect(data.length).toBe(2 * 2 ** 20);
    expect(data.subarray(0, 8).toString('latin1')).toBe('BAMBENCH');
    expect(data.readBigUInt64BE(64 * 1024 + 8)).toBe(BigInt(64 * 1024));
    expect(ensureBigFile(file, 2 * 2 ** 20, () => {})).toBe(true);
  });
});
