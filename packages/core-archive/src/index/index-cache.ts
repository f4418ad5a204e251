/**
 * A local copy of a repository's master index in binary form, so that a restore, dump, ls or backup does not decrypt
 * and parse every index file again before it can start (56,000 blobs: 0.2–0.3 s of one core, during which the
 * other waits; for a cloud repository, a download of every index file as well). Index files never change once
 * written, so a copy made from a set of them stays exact for as long as they all exist; index files added since are
 * read on top of it (Repository.loadIndex), unless one of them supersedes others: then everything is read again.
 *
 * The copy is authenticated with a key derived from the repository's master key: one that is damaged, cut short,
 * written by another version or for another repository fails the check and is ignored (and replaced). Commands that
 * judge the repository (`bam verify`, prune) never use it: they read the index files themselves.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Id } from '../format.ts';
import type { MasterIndexImage } from './master-index.ts';

/** What a cache file holds besides the entries: which index files they come from. */
export interface CachedIndex {
  /** every index file the entries account for, superseded ones included (what listing the repository showed) */
  listing: Id[];
  /** the index files the entries come from: `listing` without the superseded ones */
  indexFiles: Id[];
  /** every id that a file of `listing` supersedes */
  superseded: Id[];
  image: MasterIndexImage;
}

const MAGIC = Buffer.from('BAMIXC01', 'latin1');
const MAC_BYTES = 32;
const MAC_LABEL = 'bam index cache v1';
/** Typed arrays are stored as this machine lays them out: a copy from a machine of the other byte order is ignored. */
const LITTLE_ENDIAN = os.endianness() === 'LE';

interface Header {
  repo: string;
  littleEndian: boolean;
  listing: Id[];
  indexFiles: Id[];
  superseded: Id[];
  packIds: string[];
  packLengths: number[];
  entries: number;
}

/** The key that authenticates a repository's cache files: derived from its master key, useless for anything else. */
export function indexCacheKey(masterKey: Uint8Array, repoId: string): Buffer {
  return createHmac('sha256', masterKey).update(`${MAC_LABEL}\0${repoId}`).digest();
}

export class IndexCache {
  readonly dir: string;

  /** `dir`: a folder of this user's local state (made when first written), e.g. ~/.backup-manager/cache. */
  constructor(dir: string) {
    this.dir = dir;
  }

  /** The cache file of a repository. */
  fileOf(repoId: string): string {
    return path.join(this.dir, `index-${repoId}.bin`);
  }

  /** The repository's cached index, or undefined when there is none or it fails any check. */
  read(repoId: string, key: Uint8Array): CachedIndex | undefined {
    let bytes: Buffer;
    try {
      bytes = fs.readFileSync(this.fileOf(repoId));
    } catch {
      return undefined;
    }
    try {
      return decode(bytes, repoId, key);
    } catch {
      return undefined;
    }
  }

  /**
   * Stores the repository's index: written beside the old copy and renamed over it, so a reader sees the old one or
   * the new one, whole. False when it could not be written (a full disk, a read-only home): the cache only saves
   * time, so that never fails the command.
   */
  write(repoId: string, key: Uint8Array, content: CachedIndex): boolean {
    const file = this.fileOf(repoId);
    const temp = `${file}.${process.pid}.tmp`;
    try {
      fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
      fs.writeFileSync(temp, encode(content, repoId, key), { mode: 0o600 });
      fs.renameSync(temp, file);
      return true;
    } catch {
      try {
        fs.rmSync(temp, { force: true });
      } catch {
        // Nothing was written where nothing can be.
      }
      return false;
    }
  }
}

/** The arrays of an image in file order: the 8-byte ones first, so that each starts aligned to its element size. */
function arraysOf(image: MasterIndexImage): Uint8Array[] {
  const bytes = (a: ArrayBufferView): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  return [bytes(image.offsets), bytes(image.ids), bytes(image.packOf), bytes(image.lengths), bytes(image.rawLengths), image.types];
}

function encode(content: CachedIndex, repoId: string, key: Uint8Array): Buffer {
  const image = content.image;
  const header: Header = {
    repo: repoId,
    littleEndian: LITTLE_ENDIAN,
    listing: content.listing,
    indexFiles: content.indexFiles,
    superseded: content.superseded,
    packIds: image.packIds,
    packLengths: image.packLengths,
    entries: image.packOf.length,
  };
  const headerBytes = Buffer.from(JSON.stringify(header), 'utf8');
  const start = align8(MAGIC.length + 4 + headerBytes.length);
  const arrays = arraysOf(image);
  const size = start + arrays.reduce((n, a) => n + a.byteLength, 0);
  const out = Buffer.alloc(size + MAC_BYTES);
  MAGIC.copy(out, 0);
  out.writeUInt32LE(headerBytes.length, MAGIC.length);
  headerBytes.copy(out, MAGIC.length + 4);
  let at = start;
  for (const a of arrays) {
    out.set(a, at);
    at += a.byteLength;
  }
  createHmac('sha256', key).update(out.subarray(0, size)).digest().copy(out, size);
  return out;
}

function decode(bytes: Buffer, repoId: string, key: Uint8Array): CachedIndex | undefined {
  if (bytes.length < MAGIC.length + 4 + MAC_BYTES || !bytes.subarray(0, MAGIC.length).equals(MAGIC)) return undefined;
  const size = bytes.length - MAC_BYTES;
  const mac = createHmac('sha256', key).update(bytes.subarray(0, size)).digest();
  if (!timingSafeEqual(mac, bytes.subarray(size))) return undefined;
  const headerLength = bytes.readUInt32LE(MAGIC.length);
  const header = JSON.parse(bytes.toString('utf8', MAGIC.length + 4, MAGIC.length + 4 + headerLength)) as Header;
  if (header.repo !== repoId || header.littleEndian !== LITTLE_ENDIAN) return undefined;
  const n = header.entries;
  // Copies (not views): the file's buffer need not be aligned for 4- and 8-byte elements.
  const image: MasterIndexImage = {
    packIds: header.packIds,
    packLengths: header.packLengths,
    offsets: new Float64Array(n),
    ids: new Uint32Array(n * 8),
    packOf: new Uint32Array(n),
    lengths: new Uint32Array(n),
    rawLengths: new Uint32Array(n),
    types: new Uint8Array(n),
  };
  let at = align8(MAGIC.length + 4 + headerLength);
  for (const a of arraysOf(image)) {
    if (at + a.byteLength > size) return undefined;
    a.set(bytes.subarray(at, at + a.byteLength));
    at += a.byteLength;
  }
  if (at !== size) return undefined;
  if (![header.listing, header.indexFiles, header.superseded, header.packIds, header.packLengths].every(Array.isArray)) return undefined;
  return { listing: header.listing, indexFiles: header.indexFiles, superseded: header.superseded, image };
}

function align8(n: number): number {
  return Math.ceil(n / 8) * 8;
}
