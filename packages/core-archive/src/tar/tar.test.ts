/**
 * Tests for the pax tar encoder: header encoding checked by a small independent parser, and whole archives
 * extracted and listed by the system's GNU tar, then compared with what was described. Runs as root (owners,
 * setuid bits and device nodes are restored only then).
 */

import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isBackupError } from '../errors.ts';
import { encodeHeaderBlocks, encodePaxRecord, formatPaxTime, TarWriter } from './tar.ts';
import type { TarEntryHeader } from './tar.ts';

const NS = 1_000_000_000n;
const GiB = 1024 ** 3;
const utf8 = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });
/** Without lone surrogates (String.prototype.isWellFormed is past the configured lib). */
const isWellFormed = (s: string): boolean => !/[\uD800-\uDFFF]/u.test(s);

// --- a minimal, independent reader of our own output -------------------------------------------------------------

interface ParsedEntry {
  typeflag: string;
  path: string;
  linkpath: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtimeNs: bigint;
  uname: string;
  gname: string;
  devMajor: number;
  devMinor: number;
  /** The pax records that preceded this entry, in order. */
  pax: [string, string][];
  /** Offset of the entry's content in the archive. */
  dataOffset: number;
}

function cString(block: Uint8Array, offset: number, width: number): string {
  const field = block.subarray(offset, offset + width);
  const end = field.indexOf(0);
  return decoder.decode(end === -1 ? field : field.subarray(0, end));
}

function octal(block: Uint8Array, offset: number, width: number): number {
  const text = cString(block, offset, width).trim();
  expect(text).toMatch(/^[0-7]*$/);
  return text === '' ? 0 : parseInt(text, 8);
}

function parsePaxRecords(body: Uint8Array): [string, string][] {
  const records: [string, string][] = [];
  let at = 0;
  while (at < body.length) {
    const space = body.indexOf(0x20, at);
    const length = Number(decoder.decode(body.subarray(at, space)));
    const record = body.subarray(at, at + length);
    expect(record.length).toBe(length);
    expect(record[length - 1]).toBe(0x0a);
    const text = decoder.decode(record.subarray(space - at + 1, length - 1));
    const eq = text.indexOf('=');
    records.push([text.slice(0, eq), text.slice(eq + 1)]);
    at += length;
  }
  return records;
}

function parsePaxTime(text: string): bigint {
  const match = /^(-?)(\d+)(?:\.(\d{1,9}))?$/.exec(text);
  if (match === null) throw new Error(`bad pax time ${text}`);
  const magnitude = BigInt(match[2] ?? '0') * NS + BigInt((match[3] ?? '').padEnd(9, '0'));
  return match[1] === '-' ? -magnitude : magnitude;
}

function verifyChecksum(block: Uint8Array): void {
  const stored = block.subarray(148, 156);
  expect(stored[6]).toBe(0);
  expect(stored[7]).toBe(0x20);
  const sum = block.reduce((acc, b, i) => acc + (i >= 148 && i < 156 ? 0x20 : b), 0);
  expect(octal(block, 148, 8)).toBe(sum);
}

/** Parses headers until the end marker (or the end of the bytes); content is skipped, not read. */
function parseArchive(bytes: Uint8Array): { entries: ParsedEntry[]; endMarkerAt: number | undefined } {
  const entries: ParsedEntry[] = [];
  let at = 0;
  let pax: [string, string][] = [];
  while (at + 512 <= bytes.length) {
    const block = bytes.subarray(at, at + 512);
    if (block.every((b) => b === 0)) return { entries, endMarkerAt: at };
    verifyChecksum(block);
    expect(cString(block, 257, 6)).toBe('ustar');
    expect(block[262]).toBe(0);
    expect(cString(block, 263, 2)).toBe('00');
    const typeflag = String.fromCharCode(block[156] ?? 0);
    const size = octal(block, 124, 12);
    if (typeflag === 'x') {
      expect(pax).toEqual([]);
      pax = parsePaxRecords(bytes.subarray(at + 512, at + 512 + size));
      at += 512 + Math.ceil(size / 512) * 512;
      continue;
    }
    const values = new Map(pax);
    const prefix = cString(block, 345, 155);
    const name = cString(block, 0, 100);
    const paxTime = values.get('mtime');
    const entry: ParsedEntry = {
      typeflag,
      path: values.get('path') ?? (prefix === '' ? name : `${prefix}/${name}`),
      linkpath: values.get('linkpath') ?? cString(block, 157, 100),
      mode: octal(block, 100, 8),
      uid: Number(values.get('uid') ?? octal(block, 108, 8)),
      gid: Number(values.get('gid') ?? octal(block, 116, 8)),
      size: Number(values.get('size') ?? size),
      mtimeNs: paxTime === undefined ? BigInt(octal(block, 136, 12)) * NS : parsePaxTime(paxTime),
      uname: values.get('uname') ?? cString(block, 265, 32),
      gname: values.get('gname') ?? cString(block, 297, 32),
      devMajor: octal(block, 329, 8),
      devMinor: octal(block, 337, 8),
      pax,
      dataOffset: at + 512,
    };
    entries.push(entry);
    pax = [];
    at += 512 + (typeflag === '0' ? Math.ceil(entry.size / 512) * 512 : 0);
  }
  return { entries, endMarkerAt: undefined };
}

function parseOne(h: TarEntryHeader): ParsedEntry {
  const blocks = encodeHeaderBlocks(h);
  expect(blocks.length % 512).toBe(0);
  const { entries } = parseArchive(blocks);
  expect(entries).toHaveLength(1);
  const [entry] = entries;
  if (entry === undefined) throw new Error('unreachable');
  return entry;
}

function paxKeys(h: TarEntryHeader): string[] {
  return parseOne(h).pax.map(([key]) => key);
}

// --- helpers for whole archives ----------------------------------------------------------------------------------

interface Item {
  h: TarEntryHeader;
  content?: AsyncIterable<Uint8Array> | Iterable<Uint8Array>;
}

/** Writes an archive the way `bam dump` will: through a file stream, waiting for 'drain' on back-pressure. */
async function writeArchive(file: string, items: readonly Item[], finish = true): Promise<void> {
  const out = fs.createWriteStream(file);
  const writer = new TarWriter(async (chunk) => {
    if (!out.write(chunk)) await once(out, 'drain');
  });
  for (const { h, content } of items) await writer.addEntry(h, content);
  if (finish) await writer.finish();
  out.end();
  await once(out, 'finish');
}

function runTar(args: string[]): { status: number | null; stdout: string; stderr: string } {
  // A UTF-8 locale, so that tar neither re-encodes pax names nor escapes them in listings differently per machine.
  const result = spawnSync('tar', args, { env: { ...process.env, LC_ALL: 'C.UTF-8' }, maxBuffer: 64 << 20 });
  return { status: result.status, stdout: result.stdout.toString('utf8'), stderr: result.stderr.toString('utf8') };
}

function extract(archive: string, dir: string): void {
  fs.mkdirSync(dir, { recursive: true });
  // Timestamps in the future (2099, 2300) are expected, so that warning is silenced; any other output fails.
  const options = ['--same-owner', '-p', '--numeric-owner', '--warning=no-timestamp'];
  const result = runTar(['-x', ...options, '-f', archive, '-C', dir]);
  expect(result.stderr).toBe('');
  expect(result.status).toBe(0);
}

/** Every path under `root`, relative and '/'-separated, directories included. */
function walk(root: string, rel = ''): string[] {
  const out: string[] = [];
  for (const dirent of fs.readdirSync(path.join(root, rel), { withFileTypes: true })) {
    const child = rel === '' ? dirent.name : `${rel}/${dirent.name}`;
    out.push(child);
    if (dirent.isDirectory()) out.push(...walk(root, child));
  }
  return out;
}

/** Deterministic pseudo-random bytes (xorshift), produced piece by piece. */
function* pseudoRandomPieces(total: number, pieceSize: number, seed: number): Generator<Uint8Array> {
  let state = seed;
  for (let done = 0; done < total; ) {
    const piece = new Uint8Array(Math.min(pieceSize, total - done));
    for (let i = 0; i < piece.length; i++) {
      state ^= state << 13;
      state ^= state >>> 17;
      state ^= state << 5;
      piece[i] = state & 0xff;
    }
    done += piece.length;
    yield piece;
  }
}

async function* asyncPieces(pieces: Iterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  for (const piece of pieces) {
    await new Promise((resolve) => setImmediate(resolve));
    yield piece;
  }
}

function sha256(chunks: Iterable<Uint8Array>): string {
  const hash = createHash('sha256');
  for (const chunk of chunks) hash.update(chunk);
  return hash.digest('hex');
}

function base(h: Partial<TarEntryHeader> & Pick<TarEntryHeader, 'path' | 'type'>): TarEntryHeader {
  return { mode: 0o644, uid: 0, gid: 0, mtimeNs: 1_600_000_000n * NS, ...h };
}

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bam-tar-'));
});
afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

it('runs where GNU tar is installed and the tests are root', () => {
  expect(runTar(['--version']).stdout).toMatch(/^tar \(GNU tar\) \d/);
  expect(process.getuid?.()).toBe(0);
});

// --- header encoding ---------------------------------------------------------------------------------------------

describe('encodeHeaderBlocks', () => {
  it('writes a plain ustar header, without pax, when everything fits', () => {
    const h = base({ path: 'dir/file.txt', type: 'file', size: 5, mode: 0o100640, uid: 1000, gid: 100 });
    const blocks = encodeHeaderBlocks({ ...h, uname: 'alice', gname: 'users' });
    expect(blocks.length).toBe(512);
    const entry = parseOne({ ...h, uname: 'alice', gname: 'users' });
    expect(entry).toMatchObject({
      typeflag: '0',
      path: 'dir/file.txt',
      mode: 0o640,
      uid: 1000,
      gid: 100,
      size: 5,
      mtimeNs: 1_600_000_000n * NS,
      uname: 'alice',
      gname: 'users',
      pax: [],
    });
  });

  it('gives directories a trailing slash and each type its typeflag', () => {
    expect(parseOne(base({ path: 'a/b', type: 'dir', mode: 0o755 }))).toMatchObject({ path: 'a/b/', typeflag: '5' });
    expect(parseOne(base({ path: '.', type: 'dir' }))).toMatchObject({ path: './', typeflag: '5' });
    const flags = {
      file: '0',
      hardlink: '1',
      symlink: '2',
      chardev: '3',
      blockdev: '4',
      dir: '5',
      fifo: '6',
    } as const;
    for (const [type, flag] of Object.entries(flags) as [TarEntryHeader['type'], string][]) {
      const entry = parseOne(base({ path: 'x', type, linkTarget: 't', devMajor: 8, devMinor: 1 }));
      expect(entry.typeflag).toBe(flag);
      expect(entry.size).toBe(0);
      expect(entry.devMajor).toBe(type === 'chardev' || type === 'blockdev' ? 8 : 0);
    }
    // Only files have content: a stat-like size on a symlink must not make readers skip the next header.
    expect(parseOne(base({ path: 'l', type: 'symlink', linkTarget: 'abc', size: 3 })).size).toBe(0);
  });

  it('splits ASCII paths up to 256 bytes into prefix and name, and uses pax beyond', () => {
    const exactly100 = 'n'.repeat(100);
    expect(paxKeys(base({ path: exactly100, type: 'file' }))).toEqual([]);
    expect(paxKeys(base({ path: 'n'.repeat(101), type: 'file' }))).toEqual(['path']);

    const longest = `${'p'.repeat(155)}/${'n'.repeat(100)}`;
    const split = encodeHeaderBlocks(base({ path: longest, type: 'file' }));
    expect(split.length).toBe(512);
    expect(cString(split, 345, 155)).toBe('p'.repeat(155));
    expect(parseOne(base({ path: longest, type: 'file' })).path).toBe(longest);
    expect(paxKeys(base({ path: `${'p'.repeat(156)}/${'n'.repeat(99)}`, type: 'file' }))).toEqual(['path']);
    expect(paxKeys(base({ path: `${'p'.repeat(154)}/${'n'.repeat(101)}`, type: 'file' }))).toEqual(['path']);
    // A directory whose last component is 100 bytes would need 101 with its slash.
    expect(paxKeys(base({ path: `p/${'n'.repeat(100)}`, type: 'dir' }))).toEqual(['path']);
    expect(paxKeys(base({ path: `p/${'n'.repeat(99)}`, type: 'dir' }))).toEqual([]);
  });

  it('uses pax for non-ASCII names, long link targets and owner names that do not fit', () => {
    expect(parseOne(base({ path: 'é', type: 'file' }))).toMatchObject({ path: 'é', pax: [['path', 'é']] });
    expect(paxKeys(base({ path: 'line\nbreak', type: 'file' }))).toEqual([]);
    expect(parseOne(base({ path: 'line\nbreak', type: 'file' })).path).toBe('line\nbreak');
    expect(paxKeys(base({ path: 'l', type: 'symlink', linkTarget: 't'.repeat(100) }))).toEqual([]);
    const longTarget = `/${'t'.repeat(100)}`;
    expect(parseOne(base({ path: 'l', type: 'symlink', linkTarget: longTarget }))).toMatchObject({
      linkpath: longTarget,
      pax: [['linkpath', longTarget]],
    });
    expect(paxKeys(base({ path: 'l', type: 'hardlink', linkTarget: 'ü' }))).toEqual(['linkpath']);
    expect(paxKeys(base({ path: 'f', type: 'file', uname: 'u'.repeat(31), gname: 'g'.repeat(31) }))).toEqual([]);
    expect(paxKeys(base({ path: 'f', type: 'file', uname: 'u'.repeat(32), gname: 'gé' }))).toEqual([
      'uname',
      'gname',
    ]);
  });

  it('uses pax for sizes of 8 GiB and more, and for uid/gid beyond 7 octal digits', () => {
    expect(paxKeys(base({ path: 'f', type: 'file', size: 8 * GiB - 1 }))).toEqual([]);
    const big = parseOne(base({ path: 'f', type: 'file', size: 8 * GiB }));
    expect(big).toMatchObject({ size: 8 * GiB, pax: [['size', String(8 * GiB)]] });
    expect(parseOne(base({ path: 'f', type: 'file', size: 2 ** 53 - 1 })).size).toBe(2 ** 53 - 1);
    expect(paxKeys(base({ path: 'f', type: 'file', uid: 2097151, gid: 2097151 }))).toEqual([]);
    expect(parseOne(base({ path: 'f', type: 'file', uid: 2097152, gid: 4294967294 }))).toMatchObject({
      uid: 2097152,
      gid: 4294967294,
      pax: [
        ['uid', '2097152'],
        ['gid', '4294967294'],
      ],
    });
  });

  it('uses a pax mtime for fractions, times before 1970 and times past the octal range', () => {
    const cases: [bigint, string | undefined][] = [
      [0n, undefined],
      [8589934591n * NS, undefined], // the largest ustar mtime, in 2242
      [8589934592n * NS, '8589934592'],
      [1_700_000_000_123_456_789n, '1700000000.123456789'],
      [1_700_000_000_500_000_000n, '1700000000.5'],
      [1_700_000_000_000_000_001n, '1700000000.000000001'],
      [-1n * NS, '-1'],
      [-1_500_000_000n, '-1.5'],
      [-1n, '-0.000000001'],
      [-315_619_199_750_000_000n, '-315619199.75'],
    ];
    for (const [mtimeNs, pax] of cases) {
      const entry = parseOne(base({ path: 'f', type: 'file', mtimeNs }));
      expect(entry.pax).toEqual(pax === undefined ? [] : [['mtime', pax]]);
      expect(entry.mtimeNs).toBe(mtimeNs);
    }
  });

  it('writes pax records whose length counts itself, also where the digit count rolls over', () => {
    expect(decoder.decode(encodePaxRecord('path', 'abc'))).toBe('12 path=abc\n');
    for (let n = 0; n < 1100; n++) {
      const record = encodePaxRecord('path', 'x'.repeat(n));
      expect(Number(decoder.decode(record).split(' ')[0])).toBe(record.length);
    }
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 300 }).filter((s) => isWellFormed(s)), (value) => {
        const record = encodePaxRecord('path', value);
        expect(parsePaxRecords(record)).toEqual([['path', value]]);
      }),
    );
  });

  it('formats pax times sign-magnitude with trailing zeros trimmed', () => {
    expect(formatPaxTime(0n)).toBe('0');
    expect(formatPaxTime(1_250_000_000n)).toBe('1.25');
    expect(formatPaxTime(-1_250_000_000n)).toBe('-1.25');
    fc.assert(
      fc.property(fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }), (ns) => {
        expect(parsePaxTime(formatPaxTime(ns))).toBe(ns);
        expect(formatPaxTime(ns)).not.toMatch(/\.\d*0$/);
      }),
    );
  });

  it('round-trips arbitrary headers through an independent parser', () => {
    const component = fc
      .string({ unit: 'binary', minLength: 1, maxLength: 60 })
      .filter((s) => isWellFormed(s) && !/[/\0]/.test(s) && s !== '.' && s !== '..');
    const header = fc.record({
      path: fc.array(component, { minLength: 1, maxLength: 8 }).map((parts) => parts.join('/')),
      type: fc.constantFrom('file', 'dir', 'symlink', 'hardlink', 'fifo', 'chardev', 'blockdev'),
      mode: fc.integer({ min: 0, max: 0o7777 }),
      uid: fc.integer({ min: 0, max: 2 ** 32 - 2 }),
      gid: fc.integer({ min: 0, max: 2 ** 32 - 2 }),
      uname: fc.string({ unit: 'grapheme', maxLength: 40 }).filter((s) => !s.includes('\0')),
      mtimeNs: fc.bigInt({ min: -(2n ** 62n), max: 2n ** 62n }),
      size: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
      link: fc.array(component, { minLength: 1, maxLength: 8 }).map((parts) => parts.join('/')),
      devMajor: fc.integer({ min: 0, max: 4095 }),
      devMinor: fc.integer({ min: 0, max: 1048575 }),
    });
    fc.assert(
      fc.property(header, ({ link, ...g }) => {
        const h: TarEntryHeader = { ...g, linkTarget: link };
        const entry = parseOne(h);
        expect(entry.path).toBe(h.type === 'dir' ? `${h.path}/` : h.path);
        expect(entry).toMatchObject({ mode: h.mode, uid: h.uid, gid: h.gid, uname: h.uname, mtimeNs: h.mtimeNs });
        expect(entry.size).toBe(h.type === 'file' ? h.size : 0);
        if (h.type === 'symlink' || h.type === 'hardlink') expect(entry.linkpath).toBe(link);
        if (h.type === 'chardev' || h.type === 'blockdev') {
          expect([entry.devMajor, entry.devMinor]).toEqual([h.devMajor, h.devMinor]);
        }
        // Every header field a non-pax reader sees is plain ASCII.
        const blocks = encodeHeaderBlocks(h);
        expect(blocks.subarray(0, 512).every((b) => b < 0x80)).toBe(true);
        expect(blocks.subarray(blocks.length - 512).every((b) => b < 0x80)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('rejects headers it cannot represent faithfully', () => {
    const bad: TarEntryHeader[] = [
      base({ path: '', type: 'file' }),
      base({ path: '/abs', type: 'file' }),
      base({ path: 'a//b', type: 'file' }),
      base({ path: 'a/../b', type: 'file' }),
      base({ path: './a', type: 'file' }),
      base({ path: 'dir/', type: 'dir' }),
      base({ path: '.', type: 'file' }),
      base({ path: 'nul\0', type: 'file' }),
      base({ path: 'lone\ud800', type: 'file' }),
      base({ path: 'f', type: 'file', size: -1 }),
      base({ path: 'f', type: 'file', size: 1.5 }),
      base({ path: 'f', type: 'file', uid: -1 }),
      base({ path: 'f', type: 'file', mode: -1 }),
      base({ path: 'l', type: 'symlink' }),
      base({ path: 'l', type: 'symlink', linkTarget: '' }),
      base({ path: 'l', type: 'hardlink', linkTarget: '/etc/passwd' }),
      base({ path: 'd', type: 'chardev', devMajor: 1 }),
      base({ path: 'd', type: 'blockdev', devMajor: 1, devMinor: 0o10000000 }),
      { ...base({ path: 'f', type: 'file' }), mtimeNs: 5 as unknown as bigint },
      { ...base({ path: 'f', type: 'file' }), type: 'socket' as unknown as 'file' },
    ];
    for (const h of bad) {
      expect(() => encodeHeaderBlocks(h), JSON.stringify(h.path)).toThrow(
        expect.objectContaining({ code: 'INVALID_ARGUMENT' }),
      );
    }
  });
});

// --- TarWriter -----------------------------------------------------------------------------------------------------

describe('TarWriter', () => {
  async function collect(items: readonly Item[]): Promise<Uint8Array> {
    const chunks: Uint8Array[] = [];
    const writer = new TarWriter(async (chunk) => {
      chunks.push(chunk.slice());
    });
    for (const { h, content } of items) await writer.addEntry(h, content);
    await writer.finish();
    expect(writer.bytesWritten).toBe(chunks.reduce((n, c) => n + c.length, 0));
    return Buffer.concat(chunks);
  }

  it('pads content to whole blocks and ends with two zero blocks', async () => {
    const bytes = await collect([
      { h: base({ path: 'a', type: 'file', size: 3 }), content: [utf8.encode('abc')] },
      {
        h: base({ path: 'b', type: 'file', size: 512 }),
        content: [new Uint8Array(200).fill(1), new Uint8Array(312).fill(2)],
      },
      { h: base({ path: 'c', type: 'file', size: 0 }) },
      { h: base({ path: 'd', type: 'dir' }) },
    ]);
    expect(bytes.length).toBe(512 + 512 + 512 + 512 + 512 + 512 + 1024);
    const { entries, endMarkerAt } = parseArchive(bytes);
    expect(entries.map((e) => e.path)).toEqual(['a', 'b', 'c', 'd/']);
    expect(endMarkerAt).toBe(bytes.length - 1024);
    expect(bytes.subarray(bytes.length - 1024).every((b) => b === 0)).toBe(true);
    expect(decoder.decode(bytes.subarray(512, 515))).toBe('abc');
    expect(bytes.subarray(515, 1024).every((b) => b === 0)).toBe(true);
  });

  it('throws CORRUPT when content is shorter or longer than the size, and refuses to go on', async () => {
    const cases: Item[] = [
      { h: base({ path: 'short', type: 'file', size: 10 }), content: [new Uint8Array(9)] },
      { h: base({ path: 'none', type: 'file', size: 1 }) },
      {
        h: base({ path: 'long', type: 'file', size: 10 }),
        content: asyncPieces([new Uint8Array(6), new Uint8Array(6)]),
      },
      { h: base({ path: 'long0', type: 'file' }), content: [new Uint8Array(1)] },
    ];
    for (const { h, content } of cases) {
      const written: Uint8Array[] = [];
      const writer = new TarWriter(async (chunk) => {
        written.push(chunk);
      });
      const error: unknown = await writer.addEntry(h, content).catch((e: unknown) => e);
      expect(isBackupError(error, 'CORRUPT'), String(error)).toBe(true);
      expect((error as Error).message).toContain(h.path);
      // Never more content bytes than the header announced.
      expect(written.slice(1).reduce((n, c) => n + c.length, 0)).toBeLessThanOrEqual(h.size ?? 0);
      await expect(writer.finish()).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
      await expect(writer.addEntry(base({ path: 'x', type: 'dir' }))).rejects.toMatchObject({
        code: 'INVALID_ARGUMENT',
      });
    }
  });

  it('propagates a failing content source unchanged and stops the iterator', async () => {
    let closed = false;
    function* source(): Generator<Uint8Array> {
      try {
        yield new Uint8Array(4);
        throw new Error('disk went away');
      } finally {
        closed = true;
      }
    }
    const writer = new TarWriter(async () => {});
    const adding = writer.addEntry(base({ path: 'f', type: 'file', size: 8 }), source());
    await expect(adding).rejects.toThrow('disk went away');
    expect(closed).toBe(true);
  });

  it('rejects invalid entries before writing anything, so the archive stays usable', async () => {
    const written: Uint8Array[] = [];
    const writer = new TarWriter(async (chunk) => {
      written.push(chunk.slice());
    });
    await expect(writer.addEntry(base({ path: '/abs', type: 'file' }))).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
    });
    await expect(writer.addEntry(base({ path: 'd', type: 'dir' }), [new Uint8Array(1)])).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
    });
    expect(written).toEqual([]);
    await writer.addEntry(base({ path: 'ok', type: 'file', size: 0 }));
    await writer.finish();
    expect(parseArchive(Buffer.concat(written)).entries.map((e) => e.path)).toEqual(['ok']);
    await expect(writer.finish()).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });

  it('refuses overlapping addEntry calls', async () => {
    let release = (): void => {};
    const writer = new TarWriter(() => new Promise<void>((resolve) => (release = resolve)));
    const first = writer.addEntry(base({ path: 'a', type: 'dir' }));
    await expect(writer.addEntry(base({ path: 'b', type: 'dir' }))).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    release();
    await first;
  });
});

// --- GNU tar -------------------------------------------------------------------------------------------------------

describe('archives extracted by GNU tar', () => {
  const T1971 = 31_536_000n * NS + 0n; // 1971-01-01T00:00:00Z
  const T2099 = BigInt(Date.UTC(2099, 11, 31, 23, 59, 58)) * 1_000_000n;
  const SUBSECOND = 1_700_000_000_123_456_789n;
  const BEFORE_1970 = -315_619_199_750_000_000n; // 1960-01-01T00:00:00.25Z
  const YEAR_2300 = 10_413_792_000n * NS + 5n; // past ustar's 11 octal digits

  const bigSize = 5 * 1024 * 1024 + 123;
  const bigSha = sha256(pseudoRandomPieces(bigSize, 65_536, 0x1234567));
  const deepDirs = Array.from({ length: 60 }, (_, i) => `level-${String(i).padStart(2, '0')}`);
  const deepPaths = deepDirs.map((_, i) => `r/deep/${deepDirs.slice(0, i + 1).join('/')}`);
  const deepFile = `${deepPaths.at(-1) ?? ''}/leaf.txt`;
  const name250 = 'a'.repeat(250);
  const unicode250 = 'é'.repeat(125);
  const splitPath = `r/split/${'p'.repeat(90)}/${'n'.repeat(99)}`;
  const nullRdev = fs.statSync('/dev/null').rdev;

  interface Expected extends Item {
    text?: string;
    sha?: string;
    rdev?: number;
  }
  const file = (p: string, text: string, extra: Partial<TarEntryHeader> = {}): Expected => {
    const bytes = utf8.encode(text);
    return { h: base({ path: p, type: 'file', size: bytes.length, ...extra }), content: [bytes], text };
  };
  const dir = (p: string, extra: Partial<TarEntryHeader> = {}): Expected => ({
    h: base({ path: p, type: 'dir', mode: 0o755, ...extra }),
  });

  const items: Expected[] = [
    dir('r', { mtimeNs: T1971, uid: 10, gid: 20 }),
    file('r/empty', '', { mode: 0o600, mtimeNs: SUBSECOND }),
    file('r/small.txt', 'hello\n', { uid: 1234, gid: 5678, uname: 'alice', gname: 'staff', mtimeNs: T2099 }),
    {
      h: base({ path: 'r/big.bin', type: 'file', size: bigSize, mtimeNs: T1971 + 1n }),
      content: asyncPieces(pseudoRandomPieces(bigSize, 65_536, 0x1234567)),
      sha: bigSha,
    },
    file('r/setuid', '#!/bin/sh\n', { mode: 0o4755, uid: 1, gid: 1 }),
    file('r/setgid', 'x', { mode: 0o2711 }),
    dir('r/sticky', { mode: 0o1777, mtimeNs: T1971 + 7n * NS }),
    file('r/big-ids', 'ids', { uid: 3_000_000, gid: 4_000_000 }),
    file('r/before-1970', 'old', { mtimeNs: BEFORE_1970 }),
    file('r/year-2300', 'new', { mtimeNs: YEAR_2300 }),
    file('r/données-日本語-😀.txt', 'unicode'),
    file('r/line\nbreak', 'newline', { mtimeNs: 1_000_000_000_000_000_001n }),
    file(`r/${name250}`, 'long ascii name'),
    file(`r/${unicode250}`, 'long unicode name'),
    dir('r/split'),
    dir(`r/split/${'p'.repeat(90)}`),
    file(splitPath, 'prefix and name'),
    dir('r/deep'),
    ...deepPaths.map((p, i) => dir(p, { mode: 0o750, mtimeNs: SUBSECOND + BigInt(i) })),
    file(deepFile, 'at the bottom'),
    { h: base({ path: 'r/rel', type: 'symlink', mode: 0o777, linkTarget: 'small.txt', uid: 1234, gid: 5678 }) },
    { h: base({ path: 'r/up', type: 'symlink', mode: 0o777, linkTarget: '../r/small.txt' }) },
    { h: base({ path: 'r/abs', type: 'symlink', mode: 0o777, linkTarget: '/nonexistent/absolute target' }) },
    { h: base({ path: 'r/dangling', type: 'symlink', mode: 0o777, linkTarget: 'no-such-file' }) },
    { h: base({ path: 'r/long-link', type: 'symlink', mode: 0o777, linkTarget: `${'x/'.repeat(100)}ünd` }) },
    { h: base({ path: 'r/hl', type: 'hardlink', linkTarget: 'r/small.txt' }) },
    { h: base({ path: 'r/hl-long', type: 'hardlink', linkTarget: `r/${unicode250}` }) },
    { h: base({ path: 'r/fifo', type: 'fifo', mode: 0o640, uid: 7, gid: 8, mtimeNs: SUBSECOND }) },
    { h: base({ path: 'r/null', type: 'chardev', mode: 0o666, devMajor: 1, devMinor: 3 }), rdev: nullRdev },
    dir('r/empty-dir', { mode: 0o700, mtimeNs: SUBSECOND, uid: 99, gid: 98 }),
  ];
  const hardlinks = new Map([
    ['r/hl', 'r/small.txt'],
    ['r/hl-long', `r/${unicode250}`],
  ]);

  let archive: string;
  let out: string;
  beforeAll(async () => {
    archive = path.join(tmp, 'tree.tar');
    out = path.join(tmp, 'tree');
    await writeArchive(archive, items);
    extract(archive, out);
  });

  it('covers the deep and long cases it claims to', () => {
    expect(Buffer.byteLength(deepFile)).toBeGreaterThan(255);
    expect(Buffer.byteLength(unicode250)).toBe(250);
    const parsed = parseArchive(fs.readFileSync(archive)).entries;
    const byPath = new Map(parsed.map((e) => [e.path, e]));
    expect(byPath.get(splitPath)?.pax).toEqual([]);
    expect(byPath.get('r/big-ids')?.pax.map(([k]) => k)).toEqual(['uid', 'gid']);
    expect(byPath.get('r/year-2300')?.pax).toEqual([['mtime', '10413792000.000000005']]);
  });

  it('restores exactly the described names and nothing else', () => {
    const expected = items.map((i) => i.h.path).sort();
    expect(walk(out).sort()).toEqual(expected);
  });

  it('restores types, content, modes, owners and nanosecond mtimes', () => {
    for (const item of items) {
      const { h } = item;
      const where = path.join(out, h.path);
      const st = fs.lstatSync(where, { bigint: true });
      const label = JSON.stringify(h.path);
      const kind = {
        file: st.isFile(),
        dir: st.isDirectory(),
        symlink: st.isSymbolicLink(),
        hardlink: st.isFile(),
        fifo: st.isFIFO(),
        chardev: st.isCharacterDevice(),
        blockdev: st.isBlockDevice(),
      }[h.type];
      expect(kind, label).toBe(true);
      if (h.type === 'hardlink') continue; // checked against its target below
      if (h.type !== 'symlink') expect(Number(st.mode & 0o7777n), label).toBe(h.mode);
      expect([Number(st.uid), Number(st.gid)], label).toEqual([h.uid, h.gid]);
      expect(st.mtimeNs, label).toBe(h.mtimeNs);
      if (item.text !== undefined) expect(fs.readFileSync(where, 'utf8'), label).toBe(item.text);
      if (item.sha !== undefined) expect(sha256([fs.readFileSync(where)]), label).toBe(item.sha);
      if (h.type === 'file') expect(Number(st.size), label).toBe(h.size);
      if (h.type === 'symlink') expect(fs.readlinkSync(where), label).toBe(h.linkTarget);
      if (item.rdev !== undefined) expect(Number(st.rdev), label).toBe(item.rdev);
    }
  });

  it('restores hard links as the same inode', () => {
    for (const [link, target] of hardlinks) {
      const a = fs.lstatSync(path.join(out, link));
      const b = fs.lstatSync(path.join(out, target));
      expect(a.ino).toBe(b.ino);
      expect(a.nlink).toBe(2);
    }
  });

  it('agrees with stat(1) on sub-second and pre-1970 mtimes', () => {
    const stat = spawnSync('stat', ['-c', '%Y.%y', path.join(out, 'r/empty'), path.join(out, 'r/before-1970')], {
      encoding: 'utf8',
      env: { ...process.env, TZ: 'UTC' },
    });
    expect(stat.stdout.split('\n')).toEqual([
      '1700000000.2023-11-14 22:13:20.123456789 +0000',
      '-315619200.1960-01-01 00:00:00.250000000 +0000',
      '',
    ]);
  });

  it('lists without warnings, with sizes, owners and device numbers', () => {
    const list = runTar(['-tvf', archive, '--numeric-owner', '--utc']);
    expect(list.stderr).toBe('');
    expect(list.status).toBe(0);
    const lines = list.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(items.length);
    const line = (suffix: string): string => lines.find((l) => l.endsWith(` ${suffix}`)) ?? `missing ${suffix}`;
    expect(line('r/big.bin')).toMatch(new RegExp(`^-rw-r--r-- 0/0 +${bigSize} 1971-01-01 00:00 r/big\\.bin$`));
    expect(line('r/small.txt')).toMatch(/^-rw-r--r-- 1234\/5678 +6 2099-12-31 23:59 /);
    expect(line('r/setuid')).toMatch(/^-rwsr-xr-x 1\/1 /);
    expect(line('r/sticky/')).toMatch(/^drwxrwxrwt /);
    expect(line('r/null')).toMatch(/^crw-rw-rw- 0\/0 +1,3 /);
    expect(line('r/fifo')).toMatch(/^prw-r----- 7\/8 /);
    expect(line('r/hl link to r/small.txt')).toMatch(/^hrw-r--r-- /);
    expect(line('r/dangling -> no-such-file')).toMatch(/^lrwxrwxrwx /);
    expect(line('r/line\\nbreak')).toMatch(/^-rw-r--r-- /);
    expect(line('r/before-1970')).toMatch(/ 1960-01-01 00:00 /);
    expect(line('r/year-2300')).toMatch(/ 2300-01-01 00:00 /);
    // Without --numeric-owner tar shows the pax/ustar owner names.
    expect(runTar(['-tvf', archive]).stdout).toMatch(/ alice\/staff +6 .* r\/small\.txt\n/);
  });

  it('extracts a block device', async () => {
    const file = path.join(tmp, 'blockdev.tar');
    await writeArchive(file, [{ h: base({ path: 'loop', type: 'blockdev', mode: 0o660, devMajor: 7, devMinor: 5 }) }]);
    const dest = path.join(tmp, 'blockdev');
    extract(file, dest);
    const stat = spawnSync('stat', ['-c', '%F %t,%T %a', path.join(dest, 'loop')], { encoding: 'utf8' });
    expect(stat.stdout).toBe('block special file 7,5 660\n');
  });

  it('restores random unicode paths, split or not', async () => {
    const component = fc
      .string({ unit: 'binary', minLength: 1, maxLength: 30 })
      .filter((s) => isWellFormed(s) && !/[/\0]/.test(s) && s !== '.' && s !== '..');
    const asciiComponent = fc.stringMatching(/^[a-zA-Z0-9 _.\n-]{1,70}$/).filter((s) => s !== '.' && s !== '..');
    const tree = fc.uniqueArray(fc.array(fc.oneof(component, asciiComponent), { minLength: 1, maxLength: 6 }), {
      minLength: 1,
      maxLength: 12,
      selector: (parts) => parts[0],
    });
    let run = 0;
    await fc.assert(
      fc.asyncProperty(tree, async (paths) => {
        run++;
        const file = path.join(tmp, `random-${run}.tar`);
        const dest = path.join(tmp, `random-${run}`);
        // Each path gets its own first component, so no file is also needed as a directory.
        const items: Item[] = [];
        const expected = new Set<string>();
        for (const parts of paths) {
          for (let i = 1; i < parts.length; i++) {
            const p = parts.slice(0, i).join('/');
            if (!expected.has(p)) items.push({ h: base({ path: p, type: 'dir', mode: 0o755 }) });
            expected.add(p);
          }
          const p = parts.join('/');
          if (expected.has(p)) continue;
          expected.add(p);
          items.push({ h: base({ path: p, type: 'file', size: Buffer.byteLength(p) }), content: [utf8.encode(p)] });
        }
        await writeArchive(file, items);
        extract(file, dest);
        expect(walk(dest).sort()).toEqual([...expected].sort());
        for (const { h } of items) {
          if (h.type === 'file') expect(fs.readFileSync(path.join(dest, h.path), 'utf8')).toBe(h.path);
        }
        fs.rmSync(dest, { recursive: true });
      }),
      { numRuns: 15, seed: 20240601 },
    );
  });

  it('lists the size of a file over 8 GiB from its pax header', async () => {
    const size = 9 * GiB + 1;
    const file = path.join(tmp, 'huge.tar');
    const piece = new Uint8Array(64 * 1024);
    // Only the header and a little content: the archive is cut short on purpose.
    const chunks: Uint8Array[] = [];
    const writer = new TarWriter(async (chunk) => {
      chunks.push(chunk.slice());
    });
    const content = (function* (): Generator<Uint8Array> {
      yield piece;
      throw new Error('stop here');
    })();
    await expect(writer.addEntry(base({ path: 'huge.bin', type: 'file', size }), content)).rejects.toThrow('stop here');
    fs.writeFileSync(file, Buffer.concat(chunks));
    expect(parseArchive(Buffer.concat(chunks)).entries[0]).toMatchObject({ path: 'huge.bin', size });
    const list = runTar(['-tvf', file, '--numeric-owner']);
    expect(list.stdout).toMatch(new RegExp(`^-rw-r--r-- 0/0 +${size} \\S+ \\S+ huge\\.bin\\n`));
  });
});
