/**
 * Test-only helpers around repositories: a cheap repository on any backend (fast scrypt, small chunks and packs so
 * multi-chunk and multi-pack paths run on small inputs), listings of every repository file, and byte-level damage.
 * Not exported from the package.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Backend, FileType, Handle } from '../backend/backend.ts';
import { FILE_TYPES } from '../backend/backend.ts';
import { TEST_SCRYPT } from '../crypto/keys.ts';
import { isBackupError } from '../errors.ts';
import type { ErrorCode } from '../errors.ts';
import { Repository } from '../repository/repository.ts';
import type { InitOptions } from '../repository/repository.ts';

export const PASSWORD = 'correct horse battery staple';

/** Small chunks (within validateChunkSizes' limits) so a few hundred KiB already make several chunks and packs. */
export const SMALL_CHUNKS = { minSize: 16 * 1024, avgSize: 64 * 1024, maxSize: 256 * 1024 };
export const SMALL_PACK = 256 * 1024;

export function initRepo(backend: Backend, options: InitOptions = {}, password = PASSWORD): Promise<Repository> {
  return Repository.init(backend, password, { scrypt: TEST_SCRYPT, chunkSizes: SMALL_CHUNKS, packSize: SMALL_PACK, ...options });
}

/** Every file of the repository as `type/name` → size, for before/after comparisons. */
export async function listAll(backend: Backend): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const type of FILE_TYPES) {
    for await (const f of backend.list(type)) out.set(`${type}/${f.name}`, f.size);
  }
  return out;
}

export async function namesOf(backend: Backend, type: FileType): Promise<string[]> {
  const out: string[] = [];
  for await (const f of backend.list(type)) out.push(f.name);
  return out.sort();
}

/** Replaces a file with a copy whose byte at `offset` (negative: from the end) is inverted. */
export async function flipByte(backend: Backend, h: Handle, offset: number): Promise<void> {
  const bytes = await backend.load(h);
  const at = offset < 0 ? bytes.length + offset : offset;
  bytes[at] = bytes[at]! ^ 0xff;
  await backend.remove(h);
  await backend.save(h, bytes);
}

/** Replaces a file with its first `length` bytes. */
export async function truncateFile(backend: Backend, h: Handle, length: number): Promise<void> {
  const bytes = await backend.load(h);
  await backend.remove(h);
  await backend.save(h, bytes.slice(0, length));
}

/** Awaits a promise that must reject with a BackupError of `code`, and returns that error. */
export async function rejection(p: Promise<unknown>, code: ErrorCode): Promise<Error & { code: ErrorCode; subject?: string | undefined }> {
  try {
    await p;
  } catch (e) {
    if (isBackupError(e, code)) return e;
    throw new Error(`expected a BackupError ${code}, got ${e instanceof Error ? `${e.name} ${(e as { code?: string }).code ?? ''}: ${e.message}` : String(e)}`, { cause: e });
  }
  throw new Error(`expected a BackupError ${code}, but the call succeeded`);
}

/** A message meant for a person: one line or a few, never a stack trace. */
export function looksHumanReadable(message: string): boolean {
  return !/\n\s+at /.test(message) && !message.includes('node:internal') && message.length < 1000;
}

/**
 * A temporary directory, made on first use of `dir` (so suites that vitest skips leave nothing behind), that
 * `cleanup` removes. World-readable, so that children with fewer privileges can use it.
 */
export function tempDir(prefix: string): { readonly dir: string; cleanup: () => void } {
  let made: string | undefined;
  return {
    get dir(): string {
      if (made === undefined) {
        made = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), `bam-${prefix}-`)));
        fs.chmodSync(made, 0o755);
      }
      return made;
    },
    cleanup: () => {
      if (made !== undefined) fs.rmSync(made, { recursive: true, force: true });
    },
  };
}

/** Writes files from a map of relative path → content (string or bytes), creating directories. */
export function writeTree(root: string, files: Record<string, string | Uint8Array>): void {
  for (const [rel, content] of Object.entries(files)) {
    const p = path.join(root, rel);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.writeFileSync(p, content);
  }
}

/** Deterministic pseudo-random bytes (xorshift32), so sizes and chunk boundaries are reproducible. */
export function pseudoRandomBytes(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}
