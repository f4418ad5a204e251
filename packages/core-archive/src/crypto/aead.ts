/**
 * The envelope every encrypted piece of the repository is stored in (docs/format.md, "Encryption: the envelope"):
 * nonce (12) ‖ AES-256-GCM ciphertext ‖ tag (16), with additional authenticated data that binds the piece's role.
 */
import { createCipheriv, createDecipheriv, createSecretKey, randomBytes, randomFillSync } from 'node:crypto';
import type { Cipheriv, Decipheriv, KeyObject } from 'node:crypto';
import { BackupError } from '../errors.ts';
import type { BlobType } from '../format.ts';
import { ownedBytes, releaseBytes, utf8 } from './bytes.ts';
import { ID_BYTES } from './hash.ts';

export const NONCE_BYTES = 12;
export const TAG_BYTES = 16;
export const ENVELOPE_OVERHEAD = NONCE_BYTES + TAG_BYTES; // 28
export const KEY_BYTES = 32;

export type MetadataKind = 'config' | 'lock' | 'snapshot' | 'index' | 'key' | 'pack-header';

const METADATA_AAD: Readonly<Record<MetadataKind, Uint8Array>> = {
  config: utf8('bam:config'),
  lock: utf8('bam:lock'),
  snapshot: utf8('bam:snapshot'),
  index: utf8('bam:index'),
  key: utf8('bam:key'),
  'pack-header': utf8('bam:pack-header'),
};

const BLOB_AAD_PREFIX: Readonly<Record<BlobType, Uint8Array>> = {
  data: utf8('bam:blob:data:'),
  tree: utf8('bam:blob:tree:'),
};

function checkKey(key: Uint8Array): void {
  if (key.byteLength !== KEY_BYTES) {
    throw new BackupError('INVALID_ARGUMENT', `an encryption key is ${KEY_BYTES} bytes, got ${key.byteLength}`);
  }
}

/**
 * Imported keys, per raw key buffer. Passing raw bytes to createCipheriv imports the key anew on every call, which
 * cost about a tenth of the CPU of reading a repository blob by blob. Callers keep their key buffers for the life
 * of the repository, so the buffer identity is a sound cache key; a WeakMap lets closed repositories go.
 */
const imported = new WeakMap<Uint8Array, KeyObject>();

/**
 * The imported key for a raw key buffer. Also for code that creates its own ciphers: with raw bytes createCipheriv
 * first tests whether they are a KeyObject or a CryptoKey by catching exceptions, which in a worker cost more than
 * the cipher itself (about 1.4 s of CPU per worker in a backup of 1.5 GB).
 */
export function keyObject(key: Uint8Array): KeyObject {
  let k = imported.get(key);
  if (!k) {
    k = createSecretKey(key);
    imported.set(key, k);
  }
  return k;
}

/** Nonces drawn from the CSPRNG in one call per NONCE_BATCH, instead of one call (and its overhead) per blob. */
const NONCE_BATCH = 1024;
let nonceStock = new Uint8Array(0);
let nonceNext = 0;

/**
 * Writes a fresh random nonce into `out` at `at`. The bytes come from randomFillSync like randomBytes' do, only
 * fetched many nonces at a time; each is handed out once and then overwritten, so no two envelopes share one.
 */
export function fillNonce(out: Uint8Array, at: number): void {
  if (nonceNext + NONCE_BYTES > nonceStock.byteLength) {
    if (nonceStock.byteLength === 0) nonceStock = new Uint8Array(NONCE_BYTES * NONCE_BATCH);
    randomFillSync(nonceStock);
    nonceNext = 0;
  }
  out.set(nonceStock.subarray(nonceNext, nonceNext + NONCE_BYTES), at);
  // Not kept once given out: a nonce must never be handed out twice, even if this stock were read by mistake.
  nonceStock.fill(0, nonceNext, nonceNext + NONCE_BYTES);
  nonceNext += NONCE_BYTES;
}

export function metadataAad(kind: MetadataKind): Uint8Array {
  const aad = METADATA_AAD[kind];
  if (aad === undefined) throw new BackupError('INVALID_ARGUMENT', `unknown metadata kind "${String(kind)}"`);
  return aad.slice();
}

export function blobAad(type: BlobType, id: Uint8Array): Uint8Array {
  const prefix = BLOB_AAD_PREFIX[type];
  if (prefix === undefined) throw new BackupError('INVALID_ARGUMENT', `unknown blob type "${String(type)}"`);
  if (id.byteLength !== ID_BYTES) {
    throw new BackupError('INVALID_ARGUMENT', `a blob id is ${ID_BYTES} bytes, got ${id.byteLength}`);
  }
  const aad = new Uint8Array(prefix.byteLength + ID_BYTES);
  aad.set(prefix, 0);
  aad.set(id, prefix.byteLength);
  return aad;
}

/**
 * Seals the concatenation of `parts` without concatenating them first (the compression byte and a large payload
 * are fed to the cipher one after the other, which saves a copy of every blob).
 */
export function sealParts(key: Uint8Array, parts: readonly Uint8Array[], aad: Uint8Array): Uint8Array {
  checkKey(key);
  let plaintextLength = 0;
  for (const p of parts) plaintextLength += p.byteLength;
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', keyObject(key), nonce, { authTagLength: TAG_BYTES });
  cipher.setAAD(aad);
  const out = new Uint8Array(ENVELOPE_OVERHEAD + plaintextLength);
  out.set(nonce, 0);
  let at = NONCE_BYTES;
  for (const p of parts) {
    const c = cipher.update(p);
    out.set(c, at);
    at += c.byteLength;
  }
  const last = cipher.final();
  out.set(last, at);
  at += last.byteLength;
  out.set(cipher.getAuthTag(), at);
  return out;
}

export function seal(key: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): Uint8Array {
  return sealParts(key, [plaintext], aad);
}

export function authenticationError(what: string, cause?: unknown): BackupError {
  return new BackupError(
    'CORRUPT',
    `${what} failed authentication: it is damaged, or it was not written with this repository's key`,
    cause === undefined ? { subject: what } : { subject: what, cause },
  );
}

export function open(key: Uint8Array, envelope: Uint8Array, aad: Uint8Array, what: string): Uint8Array {
  checkKey(key);
  if (envelope.byteLength < ENVELOPE_OVERHEAD) throw authenticationError(what);
  const nonce = envelope.subarray(0, NONCE_BYTES);
  const ciphertext = envelope.subarray(NONCE_BYTES, envelope.byteLength - TAG_BYTES);
  const tag = envelope.subarray(envelope.byteLength - TAG_BYTES);
  const decipher = createDecipheriv('aes-256-gcm', keyObject(key), nonce, { authTagLength: TAG_BYTES });
  decipher.setAAD(aad);
  decipher.setAuthTag(tag);
  let plaintext: Buffer;
  try {
    plaintext = decipher.update(ciphertext);
    const rest = decipher.final();
    if (rest.byteLength > 0) plaintext = Buffer.concat([plaintext, rest]);
  } catch (e) {
    throw authenticationError(what, e);
  }
  return ownedBytes(plaintext);
}

/** The most bytes handed to a cipher at once by cipherInto: each output stays below malloc's mmap threshold. */
export const CIPHER_PIECE = 64 * 1024;

/**
 * Runs `input` through `cipher` in CIPHER_PIECE pieces, writing the output into `out` from `at`, and returns where
 * it ends. The cipher returns each piece's output in a fresh buffer; one of more than 128 KiB would be a mapping of
 * its own under the launcher's MALLOC_MMAP_THRESHOLD_, whose pages the kernel zeroes on first touch (measured: 1.1 s
 * of system time per 600 MiB whole, none in pieces). Each output is copied and freed at once. `input` may lie in
 * `out` exactly where its output goes (in place): each piece is read before its output is written over it.
 */
export function cipherInto(cipher: Cipheriv | Decipheriv, input: Uint8Array, out: Uint8Array, at: number): number {
  let p = at;
  for (let from = 0; from < input.byteLength; from += CIPHER_PIECE) {
    const piece = cipher.update(input.subarray(from, Math.min(input.byteLength, from + CIPHER_PIECE)));
    out.set(piece, p);
    p += piece.byteLength;
    releaseBytes(piece);
  }
  return p;
}
