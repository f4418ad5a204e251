import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { isBackupError } from '../errors.ts';
import type { BackupError } from '../errors.ts';
import type { CompressionOptions } from '../compress.ts';
import { metadataAad, seal } from './aead.ts';
import { utf8 } from './bytes.ts';
import { openDocument, sealDocument } from './document.ts';
import type { DocumentKind } from './document.ts';

const key = new Uint8Array(randomBytes(32));
const zstd: CompressionOptions = { compression: 'zstd', level: 3 };
const kinds: DocumentKind[] = ['config', 'lock', 'snapshot', 'index'];

function expectCorrupt(fn: () => unknown, what: string): BackupError {
  try {
    fn();
  } catch (e) {
    expect(isBackupError(e, 'CORRUPT')).toBe(true);
    expect((e as BackupError).subject).toBe(what);
    return e as BackupError;
  }
  return expect.unreachable('expected CORRUPT');
}

describe('sealDocument and openDocument', () => {
  it('round-trip JSON values for every kind and compression', () => {
    fc.assert(
      fc.property(
        fc.jsonValue(),
        fc.constantFrom(...kinds),
        fc.constantFrom<CompressionOptions>(zstd, { compression: 'none', level: 0 }),
        (doc, kind, opts) => {
          const sealed = sealDocument(key, kind, doc, opts);
          // JSON has no -0; compare with what JSON itself round-trips to.
          expect(openDocument(key, kind, sealed, `${kind} x`)).toEqual(JSON.parse(JSON.stringify(doc)));
        },
      ),
      { numRuns: 200 },
    );
  });

  it('compresses a large repetitive document', () => {
    const doc = { packs: Array.from({ length: 2000 }, (_, i) => ({ id: 'ab'.repeat(32), offset: i })) };
    const sealed = sealDocument(key, 'index', doc, zstd);
    expect(sealed.byteLength).toBeLessThan(JSON.stringify(doc).length / 5);
    expect(openDocument(key, 'index', sealed, 'index 1')).toEqual(doc);
  });

  it('is CORRUPT when opened as another kind, with another key, or tampered', () => {
    const sealed = sealDocument(key, 'snapshot', { a: 1 }, zstd);
    expectCorrupt(() => openDocument(key, 'index', sealed, 'index 1a2b'), 'index 1a2b');
    expectCorrupt(() => openDocument(new Uint8Array(32), 'snapshot', sealed, 'snapshot 1'), 'snapshot 1');
    const tampered = sealed.slice();
    tampered[20] = tampered[20]! ^ 1;
    expectCorrupt(() => openDocument(key, 'snapshot', tampered, 'snapshot 2'), 'snapshot 2');
    expectCorrupt(() => openDocument(key, 'snapshot', sealed.subarray(0, 10), 'snapshot 3'), 'snapshot 3');
  });

  it('is CORRUPT (never a raw SyntaxError) when authentic bytes are not UTF-8 JSON', () => {
    const notJson = seal(key, Uint8Array.of(0, ...utf8('{"a":')), metadataAad('lock'));
    const err = expectCorrupt(() => openDocument(key, 'lock', notJson, 'lock 9'), 'lock 9');
    expect(err.message).toMatch(/JSON/);
    expect(err.cause).toBeInstanceOf(SyntaxError);
    const notUtf8 = seal(key, Uint8Array.of(0, 0x22, 0xff, 0x22), metadataAad('lock'));
    expectCorrupt(() => openDocument(key, 'lock', notUtf8, 'lock 10'), 'lock 10');
    const badMethod = seal(key, Uint8Array.of(7, 0x31), metadataAad('lock'));
    expectCorrupt(() => openDocument(key, 'lock', badMethod, 'lock 11'), 'lock 11');
    const withBom = seal(key, Uint8Array.of(0, 0xef, 0xbb, 0xbf, 0x31), metadataAad('lock'));
    expectCorrupt(() => openDocument(key, 'lock', withBom, 'lock 12'), 'lock 12');
  });

  it('refuses a value JSON cannot represent', () => {
    expect(() => sealDocument(key, 'lock', undefined, zstd)).toThrowError(/JSON/);
    const cyclic: Record<string, unknown> = {};
    cyclic['self'] = cyclic;
    for (const bad of [cyclic, { n: 1n }]) {
      expect(() => sealDocument(key, 'lock', bad, zstd)).toThrow(expect.toSatisfy((e) => isBackupError(e, 'INVALID_ARGUMENT')));
    }
  });
});
