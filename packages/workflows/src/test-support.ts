/**
 * Test helpers (not exported): real repositories on in-memory or local backends with a few small snapshots, and
 * ways to look at what a sync left at a mirror.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FILE_TYPES, Repository, TEST_SCRYPT, backup, executePrune, planPrune, restore } from '@backup-manager/core-archive';
import type { Backend, FileType } from '@backup-manager/core-archive';
import { compareTrees } from '@backup-manager/core-archive/testing';

export const PASSWORD = 'sync-test-password';
const KiB = 1024;

/** Small packs and chunks, so that a few hundred KiB make several pack files. */
export const SMALL_REPO = {
  scrypt: TEST_SCRYPT,
  packSize: 64 * KiB,
  chunkSizes: { minSize: 8 * KiB, avgSize: 16 * KiB, maxSize: 64 * KiB },
} as const;

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `bam-workflows-${prefix}-`));
}

/** A folder with a few files, `variant` changing some of them. */
export function sourceTree(root: string, variant: number): string {
  fs.mkdirSync(path.join(root, 'docs'), { recursive: true });
  fs.writeFileSync(path.join(root, 'readme.txt'), `version ${variant}\n`);
  fs.writeFileSync(path.join(root, 'docs', 'stable.bin'), randomBytesSeeded(120 * KiB, 7));
  fs.writeFileSync(path.join(root, 'docs', `changing-${variant}.bin`), randomBytes(80 * KiB));
  return root;
}

function randomBytesSeeded(size: number, seed: number): Buffer {
  const buf = Buffer.alloc(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    buf[i] = x & 0xff;
  }
  return buf;
}

/** Initialises a repository on `backend` and backs `paths` up once per entry; returns the snapshot ids. */
export async function repositoryWithSnapshots(backend: Backend, sources: string[][]): Promise<string[]> {
  const repo = await Repository.init(backend, PASSWORD, SMALL_REPO);
  const ids: string[] = [];
  try {
    for (const paths of sources) ids.push((await backup(repo, { paths, type: 'full' })).snapshotId);
  } finally {
    repo.close();
  }
  return ids;
}

/** Forgets one snapshot and prunes: packs and index files disappear from the primary. */
export async function forgetAndPrune(backend: Backend, snapshotId: string): Promise<void> {
  const repo = await Repository.open(backend, PASSWORD);
  try {
    await backend.remove({ type: 'snapshots', name: snapshotId });
    const plan = await planPrune(repo, { maxUnused: 0 });
    await executePrune(repo, plan);
  } finally {
    repo.close();
  }
}

/** Every file of a backend except locks, as `type/name size`, sorted. */
export async function listing(backend: Backend): Promise<string[]> {
  const out: string[] = [];
  for (const type of FILE_TYPES) {
    if (type === 'locks') continue;
    for await (const f of backend.list(type as FileType)) out.push(`${type}/${f.name} ${f.size}`);
  }
  return out.sort();
}

/** Restores a snapshot from `backend` and compares it with `source`; returns the differences. */
export async function restoredDiffers(backend: Backend, snapshotId: string, source: string): Promise<string[]> {
  const repo = await Repository.open(backend, PASSWORD);
  const target = tempDir('restore');
  try {
    const result = await restore(repo, snapshotId, { target });
    if (result.mismatches.length > 0 || result.problems.length > 0) return ['restore reported problems'];
    return compareTrees(source, path.join(target, source));
  } finally {
    repo.close();
    fs.rmSync(target, { recursive: true, force: true });
  }
}

export async function snapshotIds(backend: Backend): Promise<string[]> {
  const repo = await Repository.open(backend, PASSWORD);
  try {
    return (await repo.listSnapshots()).map((s) => s.id).sort();
  } finally {
    repo.close();
  }
}
