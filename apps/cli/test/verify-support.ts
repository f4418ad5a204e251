/**
 * Fixtures for the verification e2e tests: a small source tree backed up by the real `bam` into a repository with
 * tiny packs, copies of that repository to damage one way per test, and where a file's data lives (found through
 * the library, as a person would with `bam ls` and a hex editor).
 */
import fs from 'node:fs';
import path from 'node:path';
import { LocalBackend, Repository, resolveSnapshotPath } from '@backup-manager/core-archive';
import { Scratch, bamOk, pseudoRandomBytes } from './support.ts';
import type { RunOptions } from './support.ts';

export const PASSWORD = 'pw';

export interface VerifyFixture {
  scratch: Scratch;
  home: string;
  src: string;
  /** the pristine repository; tests damage copies of it */
  repo: string;
  snapshot: string;
  run: (repo: string) => RunOptions;
  copy: (name: string) => string;
}

export const REL = {
  big: 'photos/big.bin',
  note: 'docs/note.txt',
  deep: 'docs/2024/report.bin',
} as const;

export async function makeVerifyFixture(prefix: string): Promise<VerifyFixture> {
  const scratch = new Scratch(prefix);
  const home = scratch.dir('home');
  const src = scratch.dir('src');
  const write = (rel: string, content: string | Buffer): void => {
    fs.mkdirSync(path.dirname(path.join(src, rel)), { recursive: true });
    fs.writeFileSync(path.join(src, rel), content);
  };
  write(REL.big, pseudoRandomBytes(300 * 1024, 1));
  write(REL.note, 'a note\n');
  write(REL.deep, pseudoRandomBytes(90 * 1024, 2));
  for (let i = 0; i < 6; i++) write(`misc/f${i}.bin`, pseudoRandomBytes(70 * 1024, 10 + i));
  fs.chmodSync(path.join(src, REL.note), 0o640);
  const repo = scratch.path('repo');
  const run = (r: string): RunOptions => ({ home, password: PASSWORD, env: { BACKUP_MANAGER_REPO: r } });
  let snaps: { id: string }[];
  try {
    await bamOk(['init', '--pack-size', '64KiB'], run(repo));
    await bamOk(['backup', src], run(repo));
    snaps = JSON.parse((await bamOk(['snapshots', '--json'], run(repo))).stdout) as { id: string }[];
  } catch (e) {
    scratch.cleanup();
    throw e;
  }
  let n = 0;
  const copy = (name: string): string => {
    const to = scratch.path(`${name}-${n++}`);
    fs.cpSync(repo, to, { recursive: true });
    return to;
  };
  return { scratch, home, src, repo, snapshot: snaps[0]!.id, run, copy };
}

/** The pack file (path on disk) and offset of a file's first data blob. */
export async function blobLocation(repo: string, snapshot: string, absPath: string): Promise<{ file: string; offset: number; length: number; pack: string }> {
  const r = await Repository.open(new LocalBackend(repo), PASSWORD);
  try {
    await r.loadIndex();
    const snap = await r.loadSnapshot(snapshot);
    const node = (await resolveSnapshotPath(r, snap.tree, absPath)).node;
    const loc = r.index.lookup(node.content![0]!)!;
    return { file: path.join(repo, 'data', loc.packId.slice(0, 2), loc.packId), offset: loc.offset, length: loc.length, pack: loc.packId };
  } finally {
    r.close();
  }
}

/** Pack files holding tree blobs. */
export async function treePackFiles(repo: string): Promise<string[]> {
  const r = await Repository.open(new LocalBackend(repo), PASSWORD);
  try {
    await r.loadIndex();
    return r.index.toPackEntries().filter((p) => p.blobs.some((b) => b.type === 'tree')).map((p) => path.join(repo, 'data', p.id.slice(0, 2), p.id));
  } finally {
    r.close();
  }
}
