import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { isBackupError } from '../errors.ts';
import type { BackupError } from '../errors.ts';
import type { IndexBlobEntry, IndexDocument, IndexPackEntry } from '../format.ts';
import { buildIndexDocument, parseIndexDocument } from './index-file.ts';

const hexId = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Buffer.from(b).toString('hex'));
const blobEntry: fc.Arbitrary<IndexBlobEntry> = fc.record({
  id: hexId,
  type: fc.constantFrom('data' as const, 'tree' as const),
  offset: fc.nat({ max: 2 ** 40 }),
  length: fc.integer({ min: 1, max: 0xffffffff }),
  rawLength: fc.nat({ max: 0xffffffff }),
});
const packEntry: fc.Arbitrary<IndexPackEntry> = fc.record({ id: hexId, blobs: fc.array(blobEntry, { maxLength: 8 }) });

const A = 'a'.repeat(64);
const B = 'b'.repeat(64);
const valid = (): IndexDocument => ({
  version: 1,
  supersedes: [B],
  packs: [{ id: A, blobs: [{ id: B, type: 'data', offset: 0, length: 1048604, rawLength: 1048576 }] }],
});

function parseError(value: unknown): BackupError {
  try {
    parseIndexDocument(value, 'index 1a2b');
  } catch (e) {
    return e as BackupError;
  }
  return expect.unreachable('expected parseIndexDocument to throw');
}

describe('index documents', () => {
  it('round-trip through JSON', () => {
    fc.assert(
      fc.property(fc.array(packEntry, { maxLength: 6 }), fc.array(hexId, { maxLength: 3 }), (packs, supersedes) => {
        const doc = buildIndexDocument(packs, supersedes);
        expect(doc).toEqual({ version: 1, supersedes, packs });
        expect(parseIndexDocument(JSON.parse(JSON.stringify(doc)), 'index x')).toEqual(doc);
      }),
    );
  });

  it('parses the example of docs/format.md and returns a copy', () => {
    const input = valid();
    const doc = parseIndexDocument(input, 'i');
    expect(doc).toEqual(input);
    expect(doc.packs[0]).not.toBe(input.packs[0]);
  });

  it('buildIndexDocument drops extra properties and copies its inputs', () => {
    const blobs = [{ id: B, type: 'tree' as const, offset: 3, length: 40, rawLength: 12, packId: A }];
    const doc = buildIndexDocument([{ id: A, blobs }], []);
    expect(doc.packs[0]!.blobs[0]).toEqual({ id: B, type: 'tree', offset: 3, length: 40, rawLength: 12 });
    blobs[0]!.offset = 99;
    expect(doc.packs[0]!.blobs[0]!.offset).toBe(3);
  });

  it('buildIndexDocument rejects invalid entries as INVALID_ARGUMENT', () => {
    expect(() => buildIndexDocument([{ id: 'x', blobs: [] }], [])).toThrow(
      expect.toSatisfy((e) => isBackupError(e, 'INVALID_ARGUMENT')),
    );
    expect(() => buildIndexDocument([], ['nope'])).toThrow(expect.toSatisfy((e) => isBackupError(e, 'INVALID_ARGUMENT')));
  });

  const mutations: Array<[string, (d: Record<string, any>) => void]> = [
    ['version 0', (d) => (d.version = 0)],
    ['version "1"', (d) => (d.version = '1')],
    ['a missing version', (d) => delete d.version],
    ['an unknown top-level field', (d) => (d.extra = true)],
    ['supersedes not an array', (d) => (d.supersedes = B)],
    ['an uppercase superseded id', (d) => (d.supersedes = [B.toUpperCase()])],
    ['packs not an array', (d) => (d.packs = {})],
    ['a pack that is null', (d) => (d.packs = [null])],
    ['a short pack id', (d) => (d.packs[0].id = 'abc')],
    ['a pack with an extra field', (d) => (d.packs[0].size = 5)],
    ['blobs not an array', (d) => (d.packs[0].blobs = 'x')],
    ['a blob with a bad id', (d) => (d.packs[0].blobs[0].id = 'z'.repeat(64))],
    ['a blob of unknown type', (d) => (d.packs[0].blobs[0].type = 'file')],
    ['a negative offset', (d) => (d.packs[0].blobs[0].offset = -1)],
    ['a fractional offset', (d) => (d.packs[0].blobs[0].offset = 1.5)],
    ['an offset as a string', (d) => (d.packs[0].blobs[0].offset = '0')],
    ['a zero length', (d) => (d.packs[0].blobs[0].length = 0)],
    ['a length above uint32', (d) => (d.packs[0].blobs[0].length = 2 ** 32)],
    ['a negative rawLength', (d) => (d.packs[0].blobs[0].rawLength = -5)],
    ['a missing rawLength', (d) => delete d.packs[0].blobs[0].rawLength],
    ['a blob with an extra field', (d) => (d.packs[0].blobs[0].packId = A)],
    ['an unsafe offset', (d) => (d.packs[0].blobs[0].offset = 2 ** 53)],
  ];

  it.each(mutations)('is CORRUPT for %s', (_name, mutate) => {
    const doc = valid() as unknown as Record<string, any>;
    mutate(doc);
    const err = parseError(doc);
    expect(isBackupError(err, 'CORRUPT')).toBe(true);
    expect(err.subject).toBe('index 1a2b');
    expect(err.message).toContain('index 1a2b');
  });

  it('is CORRUPT for values that are not objects', () => {
    for (const value of [null, 1, 'x', [], undefined]) expect(isBackupError(parseError(value), 'CORRUPT')).toBe(true);
  });

  it('reports a newer format version as UNSUPPORTED_VERSION', () => {
    expect(isBackupError(parseError({ ...valid(), version: 2 }), 'UNSUPPORTED_VERSION')).toBe(true);
  });
});
