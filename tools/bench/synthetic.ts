/**
 * Synthetic inputs for the two scaling checks: one big file (does peak memory grow with file size?) and a tree of
 * many small files (how fast is the scan?). Both are generated cheaply and deterministically, and reused.
 *
 * The big file repeats one 64 MiB block of AES-CTR keystream (incompressible, made once in about a second) and
 * stamps a 16-byte header (`BAMBENCH` + the byte offset) at every 64 KiB. Without the headers, content-defined
 * chunking would cut every repetition at the same places and the tools would store 64 MiB, skipping compression,
 * encryption and writing for the rest: a 4 GiB backup would measure little more than reading and hashing. Both
 * tools' smallest chunk is 512 KiB, so every chunk spans at least seven distinct headers and is unique: the
 * repository grows by the full file size (the report shows it), at the cost of a memcpy per MiB to generate.
 */
import { createCipheriv, createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { prng } from './change.ts';
import type { Log } from './corpus.ts';

const MiB = 2 ** 20;
const BLOCK = 64 * MiB;
const HEADER_EVERY = 64 * 1024;

/** `bytes` of AES-128-CTR keystream under a key derived from `label`: deterministic, fast and incompressible. */
export function keystream(label: string, bytes: number): Buffer {
  const key = createHash('sha256').update(label).digest().subarray(0, 16);
  const cipher = createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
  return Buffer.concat([cipher.update(Buffer.alloc(bytes)), cipher.final()]);
}

type BigFileMeta = { version: 1; size: number; mtimeMs: number };

/** Writes (or reuses) the big test file of `size` bytes, a multiple of 1 MiB. Returns whether it was reused. */
export function ensureBigFile(file: string, size: number, log: Log): boolean {
  const metaFile = `${file}.meta.json`;
  const stat = fs.statSync(file, { throwIfNoEntry: false });
  try {
    const meta = JSON.parse(fs.readFileSync(metaFile, 'utf8')) as BigFileMeta;
    if (stat !== undefined && meta.version === 1 && meta.size === size && stat.size === size && meta.mtimeMs === stat.mtimeMs) return true;
  } catch {
    // no or unreadable meta: regenerate
  }
  log(`writing ${(size / MiB).toFixed(0)} MiB test file ${file}`);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const block = keystream('bam-bench big file block', BLOCK);
  const piece = Buffer.allocUnsafe(MiB);
  const fd = fs.openSync(file, 'w', 0o644);
  try {
    for (let offset = 0; offset < size; offset += MiB) {
      const start = offset % BLOCK;
      block.copy(piece, 0, start, start + MiB);
      for (let h = 0; h < MiB; h += HEADER_EVERY) {
        piece.write('BAMBENCH', h, 'latin1');
        piece.writeBigUInt64BE(BigInt(offset + h), h + 8);
      }
      const len = Math.min(MiB, size - offset);
      fs.writeSync(fd, piece, 0, len);
    }
  } finally {
    fs.closeSync(fd);
  }
  const after = fs.statSync(file);
  const meta: BigFileMeta = { version: 1, size, mtimeMs: after.mtimeMs };
  fs.writeFileSync(metaFile, JSON.stringify(meta));
  return false;
}

type SmallTreeMeta = { version: 1; files: number; perDir: number; bytes: number };
const PER_DIR = 1000;

/**
 * Creates (or reuses) `count` small files (0–2 KiB, unique content) in folders of 1000 under `dir`. The marker
 * sits next to the tree, not in it, so it is not backed up. Returns the total bytes and whether it was reused.
 */
export function ensureSmallTree(dir: string, count: number, log: Log): { bytes: number; reused: boolean } {
  const metaFile = `${dir}.meta.json`;
  try {
    const meta = JSON.parse(fs.readFileSync(metaFile, 'utf8')) as SmallTreeMeta;
    if (meta.version === 1 && meta.files === count && meta.perDir === PER_DIR) {
      let found = 0;
      for (const sub of fs.readdirSync(dir)) found += fs.readdirSync(path.join(dir, sub)).length;
      if (found === count) return { bytes: meta.bytes, reused: true };
    }
  } catch {
    // missing or partial: rebuild
  }
  if (fs.existsSync(dir)) {
    log(`removing incomplete small-file tree ${dir}`);
    fs.rmSync(dir, { recursive: true, force: true });
  }
  fs.rmSync(metaFile, { force: true });
  log(`creating ${count} small files under ${dir}`);
  const source = keystream('bam-bench small files', MiB);
  const random = prng(200_000);
  let bytes = 0;
  for (let i = 0; i < count; i++) {
    const sub = path.join(dir, `d${String(Math.floor(i / PER_DIR)).padStart(4, '0')}`);
    if (i % PER_DIR === 0) fs.mkdirSync(sub, { recursive: true });
    const name = `f${String(i % PER_DIR).padStart(4, '0')}.dat`;
    const len = Math.floor(random() * 2049);
    const start = Math.floor(random() * (MiB - len));
    const body = Buffer.concat([Buffer.from(`${i}\n`), source.subarray(start, start + len)]);
    fs.writeFileSync(path.join(sub, name), body, { mode: 0o644 });
    bytes += body.length;
  }
  const meta: SmallTreeMeta = { version: 1, files: count, perDir: PER_DIR, bytes };
  fs.writeFileSync(metaFile, JSON.stringify(meta));
  return { bytes, reused: false };
}
