/**
 * Sealing and opening blobs (file chunks and trees). The AAD carries the blob's type and id, so a stored envelope
 * cannot be presented as another blob or as the other type without failing authentication.
 */
import type { BlobType } from '../format.ts';
import { decodePayload, encodePayloadParts } from '../compress.ts';
import type { CompressionOptions } from '../compress.ts';
import { blobAad, open, sealParts } from './aead.ts';

/** `id` must be sha256(plaintext); it is not recomputed here because every caller has just computed it. */
export function sealBlob(
  key: Uint8Array,
  type: BlobType,
  id: Uint8Array,
  plaintext: Uint8Array,
  opts: CompressionOptions,
): Uint8Array {
  return sealParts(key, encodePayloadParts(plaintext, opts), blobAad(type, id));
}

/**
 * The blob's plaintext, exactly `rawLength` bytes. Authentication under the repository key already binds the
 * plaintext to `id`; callers that want to guard against a faulty writer can compare sha256(plaintext) with the id.
 */
export function openBlob(
  key: Uint8Array,
  type: BlobType,
  id: Uint8Array,
  envelope: Uint8Array,
  rawLength: number,
  what: string,
): Uint8Array {
  const payload = open(key, envelope, blobAad(type, id), what);
  return decodePayload(payload, what, rawLength);
}
