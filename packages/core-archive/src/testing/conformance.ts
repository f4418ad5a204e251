/**
 * The conformance suite for the Backend contract (src/backend/backend.ts). Every backend — local, memory, the
 * wrappers, and each cloud provider against its local fake — registers it once; it checks only what the contract
 * promises, through the Backend interface alone, so it makes no assumption about files, folders or services.
 */

import { createHash } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FILE_TYPES } from '../backend/backend.ts';
import type { Backend, FileInfo, FileType, Handle, StagedFile } from '../backend/backend.ts';
import { BackupError } from '../errors.ts';
import type { ErrorCode } from '../errors.ts';

/** A freshly opened, empty backend, and how to dispose of what was opened for it. */
export interface ConformanceSubject {
  backend: Backend;
  /** Runs after `backend.close()`, e.g. to delete a temporary folder or stop a fake server. */
  cleanup?: () => Promise<void>;
}

export interface ConformanceOptions {
  /** Size of the large-file test (default 20 MiB). */
  largeFileBytes?: number;
  /** Data files in the listing test (default 250), spread over the fan-out prefixes. */
  manyFiles?: number;
  /**
   * Whether the backend implements `usage()` (default false). When true its result is checked; when false the suite
   * checks that `usage` is absent, so that a capability is never implemented untested.
   */
  supportsUsage?: boolean;
  /**
   * Whether the backend implements `stage()` (default false). When true staged files are checked like `save`; when
   * false the suite checks that `stage` is absent.
   */
  supportsStaging?: boolean;
}

const MiB = 1024 * 1024;
/** Saves run at most this many at a time in bulk set-ups, so that a slow provider is not flooded. */
const SETUP_CONCURRENCY = 16;
const SLOW_TEST_TIMEOUT_MS = 180_000;

/** Deterministic pseudo-random bytes (xorshift32), so that a failure can be reproduced. */
export function conformanceBytes(length: number, seed: number): Uint8Array {
  const words = new Uint32Array(Math.ceil(length / 4));
  let x = (seed * 2654435761 + 1) >>> 0 || 1;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    words[i] = x;
  }
  return new Uint8Array(words.buffer, 0, length);
}

/** A repository-style name: the SHA-256 of the content (config is always "config"). */
function handleFor(type: FileType, data: Uint8Array): Handle {
  return { type, name: type === 'config' ? 'config' : createHash('sha256').update(data).digest('hex') };
}

function describeHandle(h: Handle): string {
  return `${h.type}/${h.name}`;
}

/** The rejection of `call`; fails the test when `call` succeeds or throws synchronously instead of rejecting. */
async function failureOf(what: string, call: () => Promise<unknown>): Promise<unknown> {
  let pending: Promise<unknown>;
  try {
    pending = call();
  } catch (e) {
    throw new Error(`${what} threw synchronously instead of returning a rejected promise: ${String(e)}`, { cause: e });
  }
  try {
    await pending;
  } catch (e) {
    return e;
  }
  throw new Error(`${what} succeeded but should have failed`);
}

function expectCode(error: unknown, code: ErrorCode, what: string): void {
  expect(error, `${what}: expected a BackupError ${code}, got ${String(error)}`).toBeInstanceOf(BackupError);
  expect((error as BackupError).code, `${what}: error code`).toBe(code);
  expect((error as BackupError).retryable, `${what}: ${code} must not be retryable`).toBe(code === 'RATE_LIMITED' || code === 'UNAVAILABLE');
}

function expectCodeIn(error: unknown, codes: readonly ErrorCode[], what: string): void {
  expect(error, `${what}: expected a BackupError (${codes.join(' or ')}), got ${String(error)}`).toBeInstanceOf(BackupError);
  expect(codes, `${what}: error code`).toContain((error as BackupError).code);
}

/** A malformed handle must be refused as a caller bug: the TypeError of assertValidHandle, or INVALID_ARGUMENT. */
function expectMalformedHandleError(error: unknown, what: string): void {
  const ok = error instanceof TypeError || (error instanceof BackupError && error.code === 'INVALID_ARGUMENT');
  expect(ok, `${what}: expected a TypeError or BackupError INVALID_ARGUMENT, got ${String(error)}`).toBe(true);
}

function expectSameBytes(actual: Uint8Array, expected: Uint8Array, what: string): void {
  expect(actual, `${what}: load must return a Uint8Array`).toBeInstanceOf(Uint8Array);
  expect(actual.byteLength, `${what}: length`).toBe(expected.byteLength);
  const a = Buffer.from(actual.buffer, actual.byteOffset, actual.byteLength);
  const b = Buffer.from(expected.buffer, expected.byteOffset, expected.byteLength);
  if (a.equals(b)) return;
  let at = 0;
  while (a[at] === b[at]) at++;
  expect.fail(`${what}: content differs first at byte ${at} (got ${a[at]}, expected ${b[at]})`);
}

async function collect(listing: AsyncIterable<FileInfo>): Promise<FileInfo[]> {
  const out: FileInfo[] = [];
  for await (const info of listing) out.push(info);
  return out;
}

/** Name → size, failing on a name listed twice. */
async function listMap(backend: Backend, type: FileType): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const info of await collect(backend.list(type))) {
    expect(out.has(info.name), `list(${type}) yielded ${info.name} more than once`).toBe(false);
    out.set(info.name, info.size);
  }
  return out;
}

async function forEachLimited<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const item = items[next++] as T;
      await fn(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/**
 * Registers the conformance suite for one backend. `open` is called before every test and must return an empty
 * backend; the suite closes it (and runs `cleanup`) after the test.
 */
export function describeBackendConformance(
  name: string,
  open: () => Promise<ConformanceSubject>,
  options: ConformanceOptions = {},
): void {
  const largeFileBytes = options.largeFileBytes ?? 20 * MiB;
  const manyFiles = options.manyFiles ?? 250;
  const supportsUsage = options.supportsUsage ?? false;
  const supportsStaging = options.supportsStaging ?? false;

  describe(`Backend conformance: ${name}`, () => {
    let subject: ConformanceSubject | undefined;
    const backend = (): Backend => {
      if (subject === undefined) throw new Error('the conformance subject was not opened');
      return subject.backend;
    };

    beforeEach(async () => {
      subject = await open();
    });

    afterEach(async () => {
      const s = subject;
      subject = undefined;
      if (s === undefined) return;
      try {
        await s.backend.close();
      } finally {
        await s.cleanup?.();
      }
    });

    it('has a location to show in messages', () => {
      expect(typeof backend().location).toBe('string');
      expect(backend().location.length).toBeGreaterThan(0);
    });

    for (const [index, type] of FILE_TYPES.entries()) {
      it(`saves, stats, lists and loads a ${type} file`, async () => {
        const data = conformanceBytes(1000 + index * 37, 100 + index);
        const h = handleFor(type, data);
        await backend().save(h, data);
        expectSameBytes(await backend().load(h), data, `load ${describeHandle(h)}`);
        expect(await backend().stat(h)).toEqual({ name: h.name, size: data.byteLength });
        expect(await collect(backend().list(type))).toEqual([{ name: h.name, size: data.byteLength }]);
      });
    }

    it('stores an empty file', async () => {
      const empty = new Uint8Array(0);
      const h = handleFor('snapshots', empty);
      await backend().save(h, empty);
      expectSameBytes(await backend().load(h), empty, 'load of an empty file');
      expectSameBytes(await backend().load(h, 0, 0), empty, 'load(0, 0) of an empty file');
      expect(await backend().stat(h)).toEqual({ name: h.name, size: 0 });
      expect(await collect(backend().list('snapshots'))).toEqual([{ name: h.name, size: 0 }]);
      expectCode(await failureOf('load(0, 1) of an empty file', () => backend().load(h, 0, 1)), 'INVALID_RANGE', 'load(0, 1) of an empty file');
    });

    it('reports the exact size of each file with stat', async () => {
      const sizes = [1, 2, 255, 256, 4095, 4096, 4097, 65_537, 1 * MiB + 3];
      for (const [i, size] of sizes.entries()) {
        const data = conformanceBytes(size, 200 + i);
        const h = handleFor('index', data);
        await backend().save(h, data);
        expect(await backend().stat(h), `stat of a ${size}-byte file`).toEqual({ name: h.name, size });
      }
      const listed = await listMap(backend(), 'index');
      expect([...listed.values()].sort((a, b) => a - b)).toEqual(sizes);
    });

    it('loads ranges at the start, in the middle, at the end and empty ranges', async () => {
      const data = conformanceBytes(10_000, 300);
      const h = handleFor('data', data);
      await backend().save(h, data);
      const cases: [number | undefined, number | undefined][] = [
        [undefined, undefined],
        [0, undefined],
        [0, 10_000],
        [0, 1],
        [0, 123],
        [1, 1],
        [4_321, 2_000],
        [5_000, undefined],
        [9_999, 1],
        [9_999, undefined],
        [9_000, 1_000],
        [0, 0],
        [5_000, 0],
        [10_000, 0],
        [10_000, undefined],
      ];
      for (const [offset, length] of cases) {
        const start = offset ?? 0;
        const end = length === undefined ? data.byteLength : start + length;
        const got = await backend().load(h, offset, length);
        expectSameBytes(got, data.subarray(start, end), `load(${String(offset)}, ${String(length)})`);
      }
    });

    it('fails with INVALID_RANGE, never a short read, when a range reaches past the end', async () => {
      const data = conformanceBytes(100, 301);
      const h = handleFor('data', data);
      await backend().save(h, data);
      const cases: [number, number | undefined][] = [
        [0, 101],
        [50, 51],
        [99, 2],
        [100, 1],
        [101, undefined],
        [101, 0],
        [1_000_000, 10],
      ];
      for (const [offset, length] of cases) {
        const what = `load(${offset}, ${String(length)}) of a 100-byte file`;
        expectCode(await failureOf(what, () => backend().load(h, offset, length)), 'INVALID_RANGE', what);
      }
      expectSameBytes(await backend().load(h), data, 'the file after the failed ranged loads');
    });

    it('rejects a malformed range (negative or fractional) as a permanent error', async () => {
      const data = conformanceBytes(100, 302);
      const h = handleFor('data', data);
      await backend().save(h, data);
      const cases: [number, number | undefined][] = [
        [-1, undefined],
        [-1, 10],
        [0, -1],
        [1.5, 10],
        [0, 2.5],
        [Number.NaN, undefined],
      ];
      for (const [offset, length] of cases) {
        const what = `load(${offset}, ${String(length)})`;
        expectCodeIn(await failureOf(what, () => backend().load(h, offset, length)), ['INVALID_ARGUMENT', 'INVALID_RANGE'], what);
      }
    });

    it('fails with NOT_FOUND when loading or stating a missing file', async () => {
      const other = conformanceBytes(10, 400);
      await backend().save(handleFor('keys', other), other);
      for (const type of FILE_TYPES) {
        const h = handleFor(type, conformanceBytes(10, 401));
        expectCode(await failureOf(`load ${describeHandle(h)}`, () => backend().load(h)), 'NOT_FOUND', `load of missing ${type}`);
        expectCode(await failureOf(`ranged load ${describeHandle(h)}`, () => backend().load(h, 5, 1)), 'NOT_FOUND', `ranged load of missing ${type}`);
        expectCode(await failureOf(`stat ${describeHandle(h)}`, () => backend().stat(h)), 'NOT_FOUND', `stat of missing ${type}`);
      }
    });

    it(
      `lists each of ${manyFiles} data files exactly once, across the fan-out prefixes`,
      async () => {
        const files = Array.from({ length: manyFiles }, (_, i) => {
          const data = conformanceBytes(1 + (i % 97), 1_000 + i);
          return { h: handleFor('data', data), data };
        });
        const prefixes = new Set(files.map((f) => f.h.name.slice(0, 2)));
        if (manyFiles >= 50) {
          // The data must really exercise the fan-out: many prefixes, and prefixes shared by several files.
          expect(prefixes.size).toBeGreaterThan(10);
          expect(prefixes.size).toBeLessThan(manyFiles);
        }
        await forEachLimited(files, SETUP_CONCURRENCY, ({ h, data }) => backend().save(h, data));
        const listed = await listMap(backend(), 'data');
        expect(listed.size).toBe(manyFiles);
        for (const { h, data } of files) {
          expect(listed.get(h.name), `size listed for ${h.name}`).toBe(data.byteLength);
        }
      },
      SLOW_TEST_TIMEOUT_MS,
    );

    it('lists only files of the requested type', async () => {
      const counts: Record<FileType, number> = { config: 1, keys: 3, locks: 1, snapshots: 2, index: 2, data: 4 };
      const saved = new Map<FileType, Map<string, number>>();
      let seed = 500;
      for (const type of FILE_TYPES) {
        const names = new Map<string, number>();
        for (let i = 0; i < counts[type]; i++) {
          const data = conformanceBytes(10 + seed, seed++);
          const h = handleFor(type, data);
          await backend().save(h, data);
          names.set(h.name, data.byteLength);
        }
        saved.set(type, names);
      }
      for (const type of FILE_TYPES) {
        expect(await listMap(backend(), type), `list(${type})`).toEqual(saved.get(type));
      }
    });

    it('lists nothing for a type that has no files', async () => {
      for (const type of FILE_TYPES) {
        expect(await collect(backend().list(type)), `list(${type}) of an empty backend`).toEqual([]);
      }
      const data = conformanceBytes(10, 600);
      await backend().save(handleFor('data', data), data);
      for (const type of FILE_TYPES.filter((t) => t !== 'data')) {
        expect(await collect(backend().list(type)), `list(${type}) with only a data file`).toEqual([]);
      }
    });

    it('removes a file: it can no longer be loaded, stated or listed, and others stay', async () => {
      const gone = conformanceBytes(100, 700);
      const kept = conformanceBytes(100, 701);
      const hGone = handleFor('data', gone);
      const hKept = handleFor('data', kept);
      await backend().save(hGone, gone);
      await backend().save(hKept, kept);
      await backend().remove(hGone);
      expectCode(await failureOf('load after remove', () => backend().load(hGone)), 'NOT_FOUND', 'load after remove');
      expectCode(await failureOf('stat after remove', () => backend().stat(hGone)), 'NOT_FOUND', 'stat after remove');
      expect(await collect(backend().list('data'))).toEqual([{ name: hKept.name, size: 100 }]);
      expectSameBytes(await backend().load(hKept), kept, 'the file that was not removed');

      const config = conformanceBytes(10, 702);
      await backend().save(handleFor('config', config), config);
      await backend().remove({ type: 'config', name: 'config' });
      expectCode(await failureOf('load config after remove', () => backend().load({ type: 'config', name: 'config' })), 'NOT_FOUND', 'config after remove');
      expect(await collect(backend().list('config'))).toEqual([]);
    });

    it('succeeds when removing a file that does not exist', async () => {
      for (const type of FILE_TYPES) {
        const h = handleFor(type, conformanceBytes(10, 800));
        await backend().remove(h);
      }
      const data = conformanceBytes(10, 801);
      const h = handleFor('locks', data);
      await backend().save(h, data);
      await backend().remove(h);
      await backend().remove(h);
      expect(await collect(backend().list('locks'))).toEqual([]);
    });

    it('replaces a file saved again under the same name', async () => {
      const first = conformanceBytes(5_000, 900);
      const second = conformanceBytes(3_000, 901);
      const config: Handle = { type: 'config', name: 'config' };
      await backend().save(config, first);
      await backend().save(config, second);
      expectSameBytes(await backend().load(config), second, 'config after replacing it');
      expect(await backend().stat(config)).toEqual({ name: 'config', size: 3_000 });
      expect(await collect(backend().list('config'))).toEqual([{ name: 'config', size: 3_000 }]);

      // Repository names are content hashes, so saving a data file again stores the same bytes.
      const data = conformanceBytes(4_000, 902);
      const h = handleFor('data', data);
      await backend().save(h, data);
      await backend().save(h, data);
      expectSameBytes(await backend().load(h), data, 'data file saved twice');
      expect(await collect(backend().list('data'))).toEqual([{ name: h.name, size: 4_000 }]);
    });

    it('saves many distinct files concurrently', async () => {
      const files = Array.from({ length: 48 }, (_, i) => {
        const type = FILE_TYPES[1 + (i % (FILE_TYPES.length - 1))] as FileType;
        const data = conformanceBytes(1 + ((i * 7919) % 200_000), 1_100 + i);
        return { h: handleFor(type, data), data };
      });
      await Promise.all(files.map(({ h, data }) => backend().save(h, data)));
      await Promise.all(
        files.map(async ({ h, data }) => expectSameBytes(await backend().load(h), data, `concurrently saved ${describeHandle(h)}`)),
      );
      for (const type of FILE_TYPES) {
        const expected = new Map(files.filter((f) => f.h.type === type).map((f) => [f.h.name, f.data.byteLength]));
        expect(await listMap(backend(), type), `list(${type}) after concurrent saves`).toEqual(expected);
      }
    });

    it('keeps a file whole when the same name is saved concurrently', async () => {
      const data = conformanceBytes(256 * 1024, 1_200);
      const h = handleFor('data', data);
      await Promise.all(Array.from({ length: 8 }, () => backend().save(h, data)));
      expectSameBytes(await backend().load(h), data, 'file saved 8 times at once');
      expect(await collect(backend().list('data'))).toEqual([{ name: h.name, size: data.byteLength }]);
    });

    it('serves concurrent ranged loads of one file', async () => {
      const data = conformanceBytes(1 * MiB, 1_250);
      const h = handleFor('data', data);
      await backend().save(h, data);
      const ranges = Array.from({ length: 24 }, (_, i) => [i * 40_000, 1 + ((i * 7_777) % 60_000)] as const);
      await Promise.all(
        ranges.map(async ([offset, length]) =>
          expectSameBytes(await backend().load(h, offset, length), data.subarray(offset, offset + length), `load(${offset}, ${length})`),
        ),
      );
    });

    it(
      `round-trips a large file (${largeFileBytes} bytes) and ranges across it`,
      async () => {
        const data = conformanceBytes(largeFileBytes, 1_300);
        const h = handleFor('data', data);
        await backend().save(h, data);
        expect(await backend().stat(h)).toEqual({ name: h.name, size: largeFileBytes });
        expectSameBytes(await backend().load(h), data, 'the large file');
        const middle = Math.floor(largeFileBytes / 2);
        const candidates: [number, number | undefined][] = [
          [0, 1],
          [largeFileBytes - 1, 1],
          [largeFileBytes - 1, undefined],
          [middle - 1_000_003, 2_000_011],
          [Math.floor(largeFileBytes / 3), Math.floor(largeFileBytes / 3)],
          [largeFileBytes - Math.min(largeFileBytes, MiB + 17), undefined],
        ];
        // Small largeFileBytes settings make some ranges meaningless; keep those that fit in the file.
        const cases = candidates.filter(([offset, length]) => offset >= 0 && offset + (length ?? 0) <= largeFileBytes);
        for (const [offset, length] of cases) {
          const end = length === undefined ? largeFileBytes : offset + length;
          expectSameBytes(await backend().load(h, offset, length), data.subarray(offset, end), `load(${offset}, ${String(length)}) of the large file`);
        }
        expectCode(
          await failureOf('load past the end of the large file', () => backend().load(h, largeFileBytes - 10, 11)),
          'INVALID_RANGE',
          'load past the end of the large file',
        );
      },
      SLOW_TEST_TIMEOUT_MS,
    );

    it('rejects malformed handles and never touches storage with them', async () => {
      const configData = conformanceBytes(64, 1_400);
      await backend().save({ type: 'config', name: 'config' }, configData);
      const valid = handleFor('data', conformanceBytes(10, 1_401)).name;
      const malformed: Handle[] = [
        { type: 'keys', name: '../config' },
        { type: 'keys', name: `../${valid.slice(3)}` },
        { type: 'data', name: `../../${valid.slice(6)}` },
        { type: 'snapshots', name: `${valid.slice(0, 2)}/${valid.slice(3)}` },
        { type: 'index', name: `${valid.slice(0, 2)}\\${valid.slice(3)}` },
        { type: 'data', name: valid.toUpperCase() },
        { type: 'data', name: valid.slice(0, 63) },
        { type: 'data', name: `${valid}0` },
        { type: 'locks', name: '' },
        { type: 'locks', name: `${valid.slice(0, 63)}\0` },
        { type: 'index', name: ` ${valid.slice(1)}` },
        { type: 'data', name: '..' },
        { type: 'data', name: 'config' },
        { type: 'keys', name: 'config' },
        { type: 'config', name: 'keys' },
        { type: 'config', name: valid },
        { type: 'config', name: 'CONFIG' },
        { type: 'config', name: '../config' },
      ];
      const payload = conformanceBytes(32, 1_402);
      for (const h of malformed) {
        const what = (op: string) => `${op} ${JSON.stringify(h)}`;
        expectMalformedHandleError(await failureOf(what('save'), () => backend().save(h, payload)), what('save'));
        expectMalformedHandleError(await failureOf(what('load'), () => backend().load(h)), what('load'));
        expectMalformedHandleError(await failureOf(what('ranged load'), () => backend().load(h, 0, 1)), what('ranged load'));
        expectMalformedHandleError(await failureOf(what('stat'), () => backend().stat(h)), what('stat'));
        expectMalformedHandleError(await failureOf(what('remove'), () => backend().remove(h)), what('remove'));
      }
      for (const type of FILE_TYPES) {
        const expected = type === 'config' ? [{ name: 'config', size: configData.byteLength }] : [];
        expect(await collect(backend().list(type)), `list(${type}) after the malformed calls`).toEqual(expected);
      }
      expectSameBytes(await backend().load({ type: 'config', name: 'config' }), configData, 'config after the malformed calls');
    });

    it('makes each save visible at once to stat, load and list (read-after-write)', async () => {
      for (let i = 0; i < 20; i++) {
        const type = i % 2 === 0 ? 'data' : 'snapshots';
        const data = conformanceBytes(100 + i, 1_500 + i);
        const h = handleFor(type, data);
        await backend().save(h, data);
        expect(await backend().stat(h), `stat right after save #${i}`).toEqual({ name: h.name, size: data.byteLength });
        expectSameBytes(await backend().load(h), data, `load right after save #${i}`);
        const listed = await listMap(backend(), type);
        expect(listed.get(h.name), `list right after save #${i}`).toBe(data.byteLength);
        expect(listed.size).toBe(Math.floor(i / 2) + 1);
        await backend().remove(h);
        expectCode(await failureOf(`stat right after remove #${i}`, () => backend().stat(h)), 'NOT_FOUND', `stat right after remove #${i}`);
        await backend().save(h, data);
      }
    });

    it('keeps its own copy of the bytes it saves and returns', async () => {
      const original = conformanceBytes(4_096, 1_600);
      const buffer = original.slice();
      const h = handleFor('data', original);
      await backend().save(h, buffer);
      buffer.fill(0xee);
      const first = await backend().load(h);
      expectSameBytes(first, original, 'load after the caller reused its buffer');
      first.fill(0x11);
      expectSameBytes(await backend().load(h), original, 'load after the caller changed a loaded buffer');
      const part = await backend().load(h, 100, 200);
      part.fill(0x22);
      expectSameBytes(await backend().load(h, 0, 400), original.subarray(0, 400), 'load after the caller changed a loaded range');
    });

    it('saves exactly the bytes of a Uint8Array view with an offset into a larger buffer', async () => {
      const big = conformanceBytes(10_000, 1_700);
      const view = big.subarray(1_234, 1_234 + 5_000);
      const h = handleFor('data', view);
      await backend().save(h, view);
      expect(await backend().stat(h)).toEqual({ name: h.name, size: 5_000 });
      expectSameBytes(await backend().load(h), view, 'load of a file saved from a subarray');
    });

    it('lists consistently while files are being removed', async () => {
      const files = Array.from({ length: 40 }, (_, i) => {
        const data = conformanceBytes(50 + i, 1_800 + i);
        return { h: handleFor('data', data), data };
      });
      await forEachLimited(files, SETUP_CONCURRENCY, ({ h, data }) => backend().save(h, data));
      const doomed = files.filter((_, i) => i % 2 === 1);
      const kept = files.filter((_, i) => i % 2 === 0);
      const seen: string[] = [];
      for await (const info of backend().list('data')) {
        if (seen.length === 0) await Promise.all(doomed.map(({ h }) => backend().remove(h)));
        seen.push(info.name);
      }
      expect(new Set(seen).size, 'a name was listed twice').toBe(seen.length);
      const all = new Set(files.map((f) => f.h.name));
      for (const name of seen) expect(all.has(name), `listed ${name}, which was never saved`).toBe(true);
      for (const { h } of kept) expect(seen, `${h.name} was not removed and must be listed`).toContain(h.name);
      expect(new Set((await collect(backend().list('data'))).map((f) => f.name))).toEqual(new Set(kept.map((f) => f.h.name)));
    });

    it('lets a caller stop a listing early and keeps working', async () => {
      const files = Array.from({ length: 12 }, (_, i) => conformanceBytes(20, 1_900 + i));
      for (const data of files) await backend().save(handleFor('index', data), data);
      for await (const info of backend().list('index')) {
        expect(info.size).toBe(20);
        break;
      }
      const extra = conformanceBytes(20, 1_999);
      await backend().save(handleFor('index', extra), extra);
      expect((await collect(backend().list('index'))).length).toBe(13);
    });

    if (supportsUsage) {
      it('reports usage with a sane shape', async () => {
        const usage = backend().usage;
        expect(typeof usage, 'usage() must be implemented when supportsUsage is true').toBe('function');
        const data = conformanceBytes(10_000, 2_000);
        await backend().save(handleFor('data', data), data);
        const u = await backend().usage!();
        expect(Number.isFinite(u.usedBytes) && u.usedBytes >= 0, `usedBytes ${u.usedBytes}`).toBe(true);
        expect(Number.isFinite(u.trashBytes) && u.trashBytes >= 0, `trashBytes ${u.trashBytes}`).toBe(true);
        expect(u.totalBytes === null || (Number.isFinite(u.totalBytes) && u.totalBytes >= 0), `totalBytes ${String(u.totalBytes)}`).toBe(true);
        expect(Object.keys(u).sort()).toEqual(['totalBytes', 'trashBytes', 'usedBytes']);
      });
    } else {
      it('does not offer usage() (declare supportsUsage: true if it does)', () => {
        expect(backend().usage, 'the backend implements usage(); pass supportsUsage: true so that it is tested').toBeUndefined();
      });
    }

    if (supportsStaging) {
      const stage = (type: FileType): StagedFile => {
        expect(typeof backend().stage, 'stage() must be implemented when supportsStaging is true').toBe('function');
        return backend().stage!(type);
      };
      const concat = (parts: readonly Uint8Array[]): Uint8Array => {
        const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
        let at = 0;
        for (const p of parts) {
          out.set(p, at);
          at += p.byteLength;
        }
        return out;
      };

      it('stages a file piece by piece, invisible until commit, then whole under its name', async () => {
        // Small and large pieces, an empty one, and a view into a larger buffer.
        const big = conformanceBytes(3 * MiB, 3_001);
        const parts = [
          conformanceBytes(10, 3_002),
          new Uint8Array(0),
          conformanceBytes(200_000, 3_003),
          big.subarray(1_000, 1_000 + 2 * MiB),
          ...Array.from({ length: 50 }, (_, i) => conformanceBytes(1_000 + i, 3_100 + i)),
        ];
        const whole = concat(parts);
        const h = handleFor('data', whole);
        const file = stage('data');
        for (const part of parts) await file.append(part);
        expect(file.size).toBe(whole.byteLength);
        expectCode(await failureOf('stat before commit', () => backend().stat(h)), 'NOT_FOUND', 'a staged file before commit');
        expect((await listMap(backend(), 'data')).size, 'a staged file is listed before commit').toBe(0);
        await file.commit(h);
        expect((await backend().stat(h)).size).toBe(whole.byteLength);
        expect((await listMap(backend(), 'data')).get(h.name)).toBe(whole.byteLength);
        expectSameBytes(await backend().load(h), whole, 'committed staged file');
        expectSameBytes(await backend().load(h, 2_000_000, 100), whole.subarray(2_000_000, 2_000_100), 'range of a committed staged file');
        // Done: discard leaves the committed file alone, and nothing more is accepted.
        await file.discard();
        expectSameBytes(await backend().load(h), whole, 'committed staged file after discard');
        await failureOf('append after commit', () => file.append(conformanceBytes(5, 3_004)));
        await failureOf('commit twice', () => file.commit(h));
      }, SLOW_TEST_TIMEOUT_MS);

      it('takes appends made without waiting, in call order, and lets the caller reuse appended bytes', async () => {
        const piece = new Uint8Array(5_000);
        const expected: Uint8Array[] = [];
        const file = stage('data');
        const appends: Promise<void>[] = [];
        for (let i = 0; i < 40; i++) {
          piece.set(conformanceBytes(piece.byteLength, 3_200 + i));
          expected.push(piece.slice());
          appends.push(file.append(piece));
          // Overwritten before or after the append settles: only the bytes at call time may count.
          await appends[i];
        }
        const rapid = Array.from({ length: 20 }, (_, i) => conformanceBytes(700 + i, 3_300 + i));
        expected.push(...rapid);
        await Promise.all([...appends, ...rapid.map((p) => file.append(p))]);
        const whole = concat(expected);
        const h = handleFor('data', whole);
        await file.commit(h);
        expectSameBytes(await backend().load(h), whole, 'staged file appended without waiting');
      });

      it('commits an empty staged file, and keeps staged files apart', async () => {
        const empty = stage('index');
        const emptyHandle = handleFor('index', new Uint8Array(0));
        await empty.commit(emptyHandle);
        expect((await backend().stat(emptyHandle)).size).toBe(0);
        const a = stage('data');
        const b = stage('data');
        const partsA = [conformanceBytes(3_000, 3_400), conformanceBytes(70_000, 3_401)];
        const partsB = [conformanceBytes(500, 3_402), conformanceBytes(300_000, 3_403)];
        await a.append(partsA[0]!);
        await b.append(partsB[0]!);
        await a.append(partsA[1]!);
        await b.append(partsB[1]!);
        const ha = handleFor('data', concat(partsA));
        const hb = handleFor('data', concat(partsB));
        await Promise.all([a.commit(ha), b.commit(hb)]);
        expectSameBytes(await backend().load(ha), concat(partsA), 'first of two staged files');
        expectSameBytes(await backend().load(hb), concat(partsB), 'second of two staged files');
      });

      it('leaves nothing visible when a staged file is discarded', async () => {
        const data = conformanceBytes(400_000, 3_500);
        const file = stage('data');
        await file.append(data);
        await file.discard();
        await file.discard();
        expect((await listMap(backend(), 'data')).size).toBe(0);
        expectCode(await failureOf('stat of a discarded file', () => backend().stat(handleFor('data', data))), 'NOT_FOUND', 'a discarded staged file');
        await failureOf('append after discard', () => file.append(data));
        await failureOf('commit after discard', () => file.commit(handleFor('data', data)));
        expect((await listMap(backend(), 'data')).size).toBe(0);
      });

      it('replaces a file of the same name on commit, and refuses a malformed name leaving nothing', async () => {
        const data = conformanceBytes(30_000, 3_600);
        const h = handleFor('snapshots', data);
        await backend().save(h, data);
        const file = stage('snapshots');
        await file.append(data);
        await file.commit(h);
        expectSameBytes(await backend().load(h), data, 'file replaced by a staged commit');
        const bad = stage('snapshots');
        await bad.append(data);
        expectMalformedHandleError(await failureOf('commit under a malformed name', () => bad.commit({ type: 'snapshots', name: '../evil' })), 'commit under a malformed name');
        await bad.discard();
        expect([...(await listMap(backend(), 'snapshots')).keys()]).toEqual([h.name]);
      });
    } else {
      it('does not offer stage() (declare supportsStaging: true if it does)', () => {
        expect(backend().stage, 'the backend implements stage(); pass supportsStaging: true so that it is tested').toBeUndefined();
      });
    }
  });
}
