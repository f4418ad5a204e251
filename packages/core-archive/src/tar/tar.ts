/**
 * A streaming POSIX pax (ustar plus 'x' extended headers) tar encoder for `bam dump`. Each entry is written as a
 * ustar header, preceded by a pax extended header whenever a value does not fit ustar exactly, so that GNU tar (and
 * any pax reader) restores names, modes, owners, nanosecond mtimes, links and special files unchanged. Content is
 * forwarded chunk by chunk, so memory stays bounded whatever the file size.
 */

import { BackupError } from '../errors.ts';

export interface TarEntryHeader {
  /** Relative, '/'-separated, no leading '/', any UTF-8 (newlines too). Directories without the trailing slash. */
  path: string;
  type: 'file' | 'dir' | 'symlink' | 'hardlink' | 'fifo' | 'chardev' | 'blockdev';
  /** Permission bits incl. setuid/setgid/sticky; file-type bits (as in `stat.mode`) are ignored. */
  mode: number;
  uid: number;
  gid: number;
  uname?: string;
  gname?: string;
  /** Nanoseconds since the epoch; may be negative or far in the future. */
  mtimeNs: bigint;
  /** Content length of a 'file' (missing means 0); ignored for every other type. */
  size?: number;
  /** Symlink text, or the archive path of the hardlink's target (written earlier in the same archive). */
  linkTarget?: string;
  /** Required for 'chardev' and 'blockdev'. */
  devMajor?: number;
  devMinor?: number;
}

export type TarEntryType = TarEntryHeader['type'];

export const TAR_BLOCK_SIZE = 512;

const TYPE_FLAGS = {
  file: '0',
  hardlink: '1',
  symlink: '2',
  chardev: '3',
  blockdev: '4',
  dir: '5',
  fifo: '6',
} as const satisfies Record<TarEntryType, string>;

// ustar header layout: [offset, width] of each field (POSIX pax, "ustar Interchange Format").
const NAME = [0, 100] as const;
const MODE = [100, 8] as const;
const UID = [108, 8] as const;
const GID = [116, 8] as const;
const SIZE = [124, 12] as const;
const MTIME = [136, 12] as const;
const CHKSUM = [148, 8] as const;
const TYPEFLAG = 156;
const LINKNAME = [157, 100] as const;
const MAGIC = [257, 6] as const;
const VERSION = [263, 2] as const;
const UNAME = [265, 32] as const;
const GNAME = [297, 32] as const;
const DEVMAJOR = [329, 8] as const;
const DEVMINOR = [337, 8] as const;
const PREFIX = [345, 155] as const;

/** Largest value of an 8-byte numeric field: 7 octal digits and a terminating NUL. */
const MAX_OCTAL_7 = 0o7777777;
/** Largest value of a 12-byte numeric field: 11 octal digits (8 GiB - 1 for size, year 2242 for mtime). */
const MAX_OCTAL_11 = 0o77777777777;
const NS_PER_S = 1_000_000_000n;

const utf8 = new TextEncoder();

/** The header block(s) of one entry: an optional pax 'x' header with its records, then the ustar header. */
export function encodeHeaderBlocks(h: TarEntryHeader): Uint8Array {
  validateHeader(h);
  const records: [key: string, value: string][] = [];

  const path = h.type === 'dir' ? `${h.path}/` : h.path;
  const pathBytes = utf8.encode(path);
  let nameField = splitUstarName(pathBytes);
  if (nameField === undefined) {
    records.push(['path', path]);
    nameField = { name: asciiFallback(pathBytes, NAME[1]) };
  }

  let linkField: Uint8Array = new Uint8Array(0);
  if (h.type === 'symlink' || h.type === 'hardlink') {
    const target = h.linkTarget ?? '';
    const targetBytes = utf8.encode(target);
    if (isAscii(targetBytes) && targetBytes.length <= LINKNAME[1]) linkField = targetBytes;
    else {
      records.push(['linkpath', target]);
      linkField = asciiFallback(targetBytes, LINKNAME[1]);
    }
  }

  const size = h.type === 'file' ? (h.size ?? 0) : 0;
  let sizeField = size;
  if (size > MAX_OCTAL_11) {
    records.push(['size', String(size)]);
    sizeField = 0;
  }

  const ids: [key: 'uid' | 'gid', value: number][] = [
    ['uid', h.uid],
    ['gid', h.gid],
  ];
  const idFields = ids.map(([key, id]) => {
    if (id <= MAX_OCTAL_7) return id;
    records.push([key, String(id)]);
    return 0;
  });

  const owners: [key: 'uname' | 'gname', value: string | undefined, width: number][] = [
    ['uname', h.uname, UNAME[1]],
    ['gname', h.gname, GNAME[1]],
  ];
  const ownerFields = owners.map(([key, owner, width]) => {
    const bytes = utf8.encode(owner ?? '');
    // The field needs a terminating NUL, so at most width - 1 bytes fit.
    if (isAscii(bytes) && bytes.length < width) return bytes;
    records.push([key, owner ?? '']);
    return asciiFallback(bytes, width - 1);
  });

  const seconds = floorDiv(h.mtimeNs, NS_PER_S);
  const fraction = h.mtimeNs - seconds * NS_PER_S;
  if (fraction !== 0n || seconds < 0n || seconds > BigInt(MAX_OCTAL_11)) {
    records.push(['mtime', formatPaxTime(h.mtimeNs)]);
  }
  const mtimeField = Number(seconds < 0n ? 0n : seconds > BigInt(MAX_OCTAL_11) ? BigInt(MAX_OCTAL_11) : seconds);

  const isDevice = h.type === 'chardev' || h.type === 'blockdev';
  const ustar = new Uint8Array(TAR_BLOCK_SIZE);
  putBytes(ustar, NAME, nameField.name);
  if (nameField.prefix !== undefined) putBytes(ustar, PREFIX, nameField.prefix);
  putOctal(ustar, MODE, h.mode & 0o7777);
  putOctal(ustar, UID, idFields[0] ?? 0);
  putOctal(ustar, GID, idFields[1] ?? 0);
  putOctal(ustar, SIZE, sizeField);
  putOctal(ustar, MTIME, mtimeField);
  ustar[TYPEFLAG] = TYPE_FLAGS[h.type].charCodeAt(0);
  putBytes(ustar, LINKNAME, linkField);
  putBytes(ustar, UNAME, ownerFields[0] ?? new Uint8Array(0));
  putBytes(ustar, GNAME, ownerFields[1] ?? new Uint8Array(0));
  putOctal(ustar, DEVMAJOR, isDevice ? (h.devMajor ?? 0) : 0);
  putOctal(ustar, DEVMINOR, isDevice ? (h.devMinor ?? 0) : 0);
  finishUstarHeader(ustar);

  if (records.length === 0) return ustar;

  const body = concat(records.map(([key, value]) => encodePaxRecord(key, value)));
  const paxHeader = new Uint8Array(TAR_BLOCK_SIZE);
  // Readers that do not know pax extract the 'x' entry as a plain file; give it a harmless, short, ASCII name.
  const baseName = utf8.encode(h.path.slice(h.path.lastIndexOf('/') + 1));
  const paxName = concat([utf8.encode('PaxHeaders/'), asciiFallback(baseName, NAME[1] - 'PaxHeaders/'.length)]);
  putBytes(paxHeader, NAME, paxName);
  putOctal(paxHeader, MODE, 0o644);
  putOctal(paxHeader, UID, 0);
  putOctal(paxHeader, GID, 0);
  putOctal(paxHeader, SIZE, body.length);
  putOctal(paxHeader, MTIME, mtimeField);
  paxHeader[TYPEFLAG] = 'x'.charCodeAt(0);
  putOctal(paxHeader, DEVMAJOR, 0);
  putOctal(paxHeader, DEVMINOR, 0);
  finishUstarHeader(paxHeader);

  const out = new Uint8Array(TAR_BLOCK_SIZE + roundUpToBlock(body.length) + TAR_BLOCK_SIZE);
  out.set(paxHeader, 0);
  out.set(body, TAR_BLOCK_SIZE);
  out.set(ustar, out.length - TAR_BLOCK_SIZE);
  return out;
}

/**
 * One pax extended-header record, `"%d %s=%s\n"`, where the decimal length counts the whole record including its
 * own digits.
 */
export function encodePaxRecord(key: string, value: string): Uint8Array {
  const rest = utf8.encode(` ${key}=${value}\n`);
  let length = rest.length + String(rest.length).length;
  // Adding the digits can carry the length into one more digit (e.g. 98 + 2 -> 100 needs 3).
  if (String(length).length + rest.length !== length) length = rest.length + String(length).length;
  return concat([utf8.encode(String(length)), rest]);
}

/** A pax time value: decimal seconds, sign-magnitude, with up to 9 fraction digits and no trailing zeros. */
export function formatPaxTime(ns: bigint): string {
  const negative = ns < 0n;
  const magnitude = negative ? -ns : ns;
  const whole = magnitude / NS_PER_S;
  const fraction = (magnitude % NS_PER_S).toString().padStart(9, '0').replace(/0+$/, '');
  return `${negative ? '-' : ''}${whole}${fraction === '' ? '' : `.${fraction}`}`;
}

type WriterState = 'idle' | 'busy' | 'failed' | 'finished';

/**
 * Writes a tar stream entry by entry through `write`, which the caller makes wait for back-pressure (for example
 * `stream.write` followed by `drain`). Entries are written one at a time: await each `addEntry` before the next.
 */
export class TarWriter {
  readonly #write: (chunk: Uint8Array) => Promise<void>;
  #state: WriterState = 'idle';
  #bytesWritten = 0;

  constructor(write: (chunk: Uint8Array) => Promise<void>) {
    this.#write = write;
  }

  /** Bytes handed to `write` so far. */
  get bytesWritten(): number {
    return this.#bytesWritten;
  }

  /**
   * Writes one entry. A 'file' streams `content`, which must total exactly `h.size` bytes (else BackupError
   * 'CORRUPT', and the archive written so far is unusable); other types take no content.
   */
  async addEntry(h: TarEntryHeader, content?: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): Promise<void> {
    this.#enter('add an entry');
    let header: Uint8Array;
    try {
      header = encodeHeaderBlocks(h);
      if (h.type !== 'file' && content !== undefined) {
        throw new BackupError('INVALID_ARGUMENT', `Tar entry "${h.path}" is a ${h.type}; only files take content.`, {
          subject: h.path,
        });
      }
    } catch (e) {
      // Nothing was written, so the archive is still consistent and the caller may go on.
      this.#state = 'idle';
      throw e;
    }
    try {
      await this.#emit(header);
      if (h.type === 'file') await this.#streamContent(h.path, h.size ?? 0, content);
      this.#state = 'idle';
    } catch (e) {
      this.#state = 'failed';
      throw e;
    }
  }

  /** Ends the archive with two zero blocks. */
  async finish(): Promise<void> {
    this.#enter('finish');
    try {
      await this.#emit(new Uint8Array(2 * TAR_BLOCK_SIZE));
      this.#state = 'finished';
    } catch (e) {
      this.#state = 'failed';
      throw e;
    }
  }

  #enter(what: string): void {
    if (this.#state === 'idle') {
      this.#state = 'busy';
      return;
    }
    const why = {
      busy: 'another entry is still being written; await each addEntry before the next',
      failed: 'an earlier entry failed part-way, so the archive is incomplete; start a new archive',
      finished: 'the archive is already finished',
    }[this.#state];
    throw new BackupError('INVALID_ARGUMENT', `Cannot ${what} on this tar archive: ${why}.`);
  }

  async #emit(chunk: Uint8Array): Promise<void> {
    await this.#write(chunk);
    this.#bytesWritten += chunk.length;
  }

  async #streamContent(
    path: string,
    size: number,
    content: AsyncIterable<Uint8Array> | Iterable<Uint8Array> | undefined,
  ): Promise<void> {
    let written = 0;
    if (content !== undefined) {
      for await (const chunk of content) {
        if (!(chunk instanceof Uint8Array)) {
          throw new BackupError('INVALID_ARGUMENT', `Content of "${path}" yielded a non-Uint8Array chunk.`, {
            subject: path,
          });
        }
        if (chunk.length === 0) continue;
        if (written + chunk.length > size) {
          throw sizeMismatch(path, size, `more than ${size}`);
        }
        await this.#emit(chunk);
        written += chunk.length;
      }
    }
    if (written !== size) throw sizeMismatch(path, size, String(written));
    const padding = roundUpToBlock(size) - size;
    if (padding > 0) await this.#emit(new Uint8Array(padding));
  }
}

function sizeMismatch(path: string, expected: number, actual: string): BackupError {
  return new BackupError(
    'CORRUPT',
    `Content of "${path}" was ${actual} bytes but its recorded size is ${expected}; the snapshot data does not ` +
      'match its metadata. Run a repository check, and dump again after repairing it.',
    { subject: path },
  );
}

function invalid(h: TarEntryHeader, what: string): BackupError {
  return new BackupError('INVALID_ARGUMENT', `Cannot write tar entry "${h.path}": ${what}.`, { subject: h.path });
}

function isNonNegativeInteger(n: unknown, max = Number.MAX_SAFE_INTEGER): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0 && n <= max;
}

function isCleanString(s: unknown): s is string {
  // In a /u regex a surrogate pair is one code point, so only lone surrogates (ill-formed UTF-16) match.
  return typeof s === 'string' && !/[\uD800-\uDFFF]/u.test(s) && !s.includes('\0');
}

function isArchivePath(p: string): boolean {
  return isCleanString(p) && p !== '' && p.split('/').every((c) => c !== '' && c !== '.' && c !== '..');
}

function validateHeader(h: TarEntryHeader): void {
  if (!Object.hasOwn(TYPE_FLAGS, h.type)) throw invalid(h, `unknown type ${String(h.type)}`);
  // A lone surrogate would silently become U+FFFD and name a different file; NUL cannot appear in a name.
  if (!(isArchivePath(h.path) || (h.type === 'dir' && h.path === '.'))) {
    throw invalid(h, 'the path must be relative, well-formed, NUL-free and without empty, "." or ".." components');
  }
  if (!isNonNegativeInteger(h.mode)) throw invalid(h, `mode ${String(h.mode)} is not a permission mask`);
  if (!isNonNegativeInteger(h.uid)) throw invalid(h, `uid ${String(h.uid)} is not a non-negative integer`);
  if (!isNonNegativeInteger(h.gid)) throw invalid(h, `gid ${String(h.gid)} is not a non-negative integer`);
  if (typeof h.mtimeNs !== 'bigint') throw invalid(h, 'mtimeNs must be a bigint');
  for (const owner of [h.uname, h.gname]) {
    if (owner !== undefined && !isCleanString(owner)) throw invalid(h, 'uname/gname must be well-formed and NUL-free');
  }
  if (h.type === 'file' && h.size !== undefined && !isNonNegativeInteger(h.size)) {
    throw invalid(h, `size ${String(h.size)} is not a non-negative integer`);
  }
  if (h.type === 'symlink' && !(isCleanString(h.linkTarget) && h.linkTarget !== '')) {
    throw invalid(h, 'a symlink needs a non-empty, well-formed, NUL-free linkTarget');
  }
  if (h.type === 'hardlink' && !(typeof h.linkTarget === 'string' && isArchivePath(h.linkTarget))) {
    throw invalid(h, 'a hardlink needs the relative archive path of its target as linkTarget');
  }
  if (h.type === 'chardev' || h.type === 'blockdev') {
    if (!isNonNegativeInteger(h.devMajor, MAX_OCTAL_7) || !isNonNegativeInteger(h.devMinor, MAX_OCTAL_7)) {
      throw invalid(h, `a device needs devMajor and devMinor between 0 and ${MAX_OCTAL_7}`);
    }
  }
}

/**
 * Fits a path into ustar's name (100 bytes) and prefix (155 bytes, joined with '/'), or returns undefined when it
 * cannot be stored exactly (non-ASCII, or no '/' splits it into fitting, non-empty parts).
 */
function splitUstarName(bytes: Uint8Array): { name: Uint8Array; prefix?: Uint8Array } | undefined {
  if (!isAscii(bytes)) return undefined;
  if (bytes.length <= NAME[1]) return { name: bytes };
  // Shortest prefix whose remainder fits the name field; a longer prefix would only shorten the name further.
  const slash = '/'.charCodeAt(0);
  // The split must leave a non-empty name: a directory's trailing slash alone is not one.
  for (let i = bytes.length - NAME[1] - 1; i <= PREFIX[1] && i < bytes.length - 1; i++) {
    if (bytes[i] === slash) {
      return { prefix: bytes.subarray(0, i), name: bytes.subarray(i + 1) };
    }
  }
  return undefined;
}

function isAscii(bytes: Uint8Array): boolean {
  return bytes.every((b) => b < 0x80);
}

/** A stand-in for readers that ignore pax: non-ASCII bytes become '_', cut to `max` bytes. */
function asciiFallback(bytes: Uint8Array, max: number): Uint8Array {
  return bytes.subarray(0, max).map((b) => (b < 0x80 ? b : 0x5f));
}

function putBytes(block: Uint8Array, [offset, width]: readonly [number, number], bytes: Uint8Array): void {
  if (bytes.length > width) throw new BackupError('INTERNAL', `tar field overflow (${bytes.length} > ${width})`);
  block.set(bytes, offset);
}

/** A numeric field: zero-padded octal digits filling all but the last byte, which stays NUL. */
function putOctal(block: Uint8Array, [offset, width]: readonly [number, number], value: number): void {
  const digits = value.toString(8).padStart(width - 1, '0');
  if (digits.length > width - 1) throw new BackupError('INTERNAL', `tar numeric field overflow (${value})`);
  block.set(utf8.encode(digits), offset);
}

/** Fills magic and version and computes the checksum over the block with the checksum field read as spaces. */
function finishUstarHeader(block: Uint8Array): void {
  putBytes(block, MAGIC, utf8.encode('ustar\0'));
  putBytes(block, VERSION, utf8.encode('00'));
  block.fill(0x20, CHKSUM[0], CHKSUM[0] + CHKSUM[1]);
  const sum = block.reduce((acc, b) => acc + b, 0);
  // Six octal digits, NUL, space: the form every historical reader accepts.
  block.set(utf8.encode(`${sum.toString(8).padStart(6, '0')}\0 `), CHKSUM[0]);
}

function floorDiv(a: bigint, b: bigint): bigint {
  const q = a / b;
  return a % b !== 0n && a < 0n !== b < 0n ? q - 1n : q;
}

function roundUpToBlock(n: number): number {
  return Math.ceil(n / TAR_BLOCK_SIZE) * TAR_BLOCK_SIZE;
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
