/**
 * Sealing and opening the encrypted JSON metadata files (config, locks, snapshots, index files): an envelope, with
 * the file's role as AAD, around a compressed payload of the UTF-8 JSON text.
 */
import { BackupError } from '../errors.ts';
import { decodePayload, encodePayloadParts } from '../compress.ts';
import type { CompressionOptions } from '../compress.ts';
import { metadataAad, open, sealParts } from './aead.ts';
import { strictUtf8Decode, utf8 } from './bytes.ts';

export type DocumentKind = 'config' | 'lock' | 'snapshot' | 'index';

/**
 * Largest JSON text we will decompress for a metadata file. Index files are the big ones (~170 bytes per blob); the
 * repository layer keeps each one far below this, and V8 cannot hold a string much beyond 512 MiB anyway.
 */
export const MAX_DOCUMENT_BYTES = 256 * 1024 * 1024;

export function sealDocument(key: Uint8Array, kind: DocumentKind, doc: unknown, opts: CompressionOptions): Uint8Array {
  let text: string | undefined;
  try {
    text = JSON.stringify(doc) as string | undefined;
  } catch (e) {
    // BigInt values and cycles: a programming error in the caller, not damage.
    throw new BackupError('INVALID_ARGUMENT', `a ${kind} document must be JSON-serialisable: ${(e as Error).message}`, {
      cause: e,
    });
  }
  if (text === undefined) {
    throw new BackupError('INVALID_ARGUMENT', `a ${kind} document must be JSON-serialisable, got ${typeof doc}`);
  }
  return sealParts(key, encodePayloadParts(utf8(text), opts), metadataAad(kind));
}

export function openDocument(key: Uint8Array, kind: DocumentKind, bytes: Uint8Array, what: string): unknown {
  const payload = open(key, bytes, metadataAad(kind), what);
  const raw = decodePayload(payload, what, undefined, MAX_DOCUMENT_BYTES);
  try {
    return JSON.parse(strictUtf8Decode(raw)) as unknown;
  } catch (e) {
    throw new BackupError(
      'CORRUPT',
      `${what} authenticated but does not hold valid UTF-8 JSON; it was written by a faulty program. Run "check"`,
      { subject: what, cause: e },
    );
  }
}
