/**
 * Key files (keys/<id>): the master key wrapped with a key derived from a password (docs/format.md, "Keys"). The
 * JSON is stored in the clear and read before anything is authenticated, so parsing it is strict and bounded.
 */
import { randomBytes } from 'node:crypto';
import { BackupError } from '../errors.ts';
import type { KeyFile, MasterKeyDocument } from '../format.ts';
import { ENVELOPE_OVERHEAD, KEY_BYTES, metadataAad, open, seal } from './aead.ts';
import { ownedBytes, strictUtf8Decode, utf8 } from './bytes.ts';
import { deriveKey, scryptParamsProblem } from './kdf.ts';
import type { ScryptParams } from './kdf.ts';

export { DEFAULT_SCRYPT, TEST_SCRYPT, deriveKey } from './kdf.ts';
export type { ScryptParams } from './kdf.ts';

export const SALT_BYTES = 32;
/** A key file is a few hundred bytes; anything much larger is not one. */
export const MAX_KEY_FILE_BYTES = 64 * 1024;
const MAX_TEXT_FIELD = 1024;
const MAX_DATA_ENVELOPE = 4096;

const BASE64_PATTERN = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Decodes canonical, padded base64; returns undefined for anything else. */
export function decodeBase64Strict(text: string): Uint8Array | undefined {
  if (!BASE64_PATTERN.test(text)) return undefined;
  const bytes = Buffer.from(text, 'base64');
  if (bytes.toString('base64') !== text) return undefined;
  return ownedBytes(bytes);
}

export function encodeBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

export function generateMasterKey(): Uint8Array {
  return ownedBytes(randomBytes(KEY_BYTES));
}

export async function createKeyFile(
  password: string,
  masterKey: Uint8Array,
  params: ScryptParams,
  info: { hostname: string; username: string; now: Date },
): Promise<{ doc: KeyFile; bytes: Uint8Array }> {
  if (masterKey.byteLength !== KEY_BYTES) {
    throw new BackupError('INVALID_ARGUMENT', `a master key is ${KEY_BYTES} bytes, got ${masterKey.byteLength}`);
  }
  const problem = scryptParamsProblem(params);
  if (problem !== undefined) throw new BackupError('INVALID_ARGUMENT', problem);
  const salt = ownedBytes(randomBytes(SALT_BYTES));
  const wrappingKey = await deriveKey(password, salt, params);
  const inner: MasterKeyDocument = { encrypt: encodeBase64(masterKey) };
  const plaintext = utf8(JSON.stringify(inner));
  const envelope = seal(wrappingKey, plaintext, metadataAad('key'));
  wrappingKey.fill(0);
  plaintext.fill(0);
  const doc: KeyFile = {
    version: 1,
    created: info.now.toISOString(),
    hostname: info.hostname,
    username: info.username,
    kdf: 'scrypt',
    N: params.N,
    r: params.r,
    p: params.p,
    salt: encodeBase64(salt),
    data: encodeBase64(envelope),
  };
  // Validate what we are about to store with the same rules every reader applies.
  checkKeyFile(doc, 'the new key file', 'INVALID_ARGUMENT');
  return { doc, bytes: utf8(JSON.stringify(doc)) };
}

function keyFileError(what: string, detail: string, code: 'CORRUPT' | 'INVALID_ARGUMENT', cause?: unknown) {
  return new BackupError(
    code,
    `${what} is not a valid key file (${detail}); remove it with "key remove" or restore it from a copy`,
    cause === undefined ? { subject: what } : { subject: what, cause },
  );
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})$/;

function checkKeyFile(value: unknown, what: string, code: 'CORRUPT' | 'INVALID_ARGUMENT'): KeyFile {
  if (!isRecord(value)) throw keyFileError(what, 'not a JSON object', code);
  const { version, created, hostname, username, kdf, N, r, p, salt, data } = value;
  if (typeof version === 'number' && Number.isInteger(version) && version > 1) {
    throw new BackupError(
      'UNSUPPORTED_VERSION',
      `${what} has key file version ${version}; this program reads version 1. Upgrade Backup Automation Manager`,
      { subject: what },
    );
  }
  if (version !== 1) throw keyFileError(what, 'version is not 1', code);
  if (typeof created !== 'string' || !ISO_TIME.test(created) || Number.isNaN(Date.parse(created))) {
    throw keyFileError(what, '"created" is not an ISO 8601 time', code);
  }
  if (typeof hostname !== 'string' || hostname.length > MAX_TEXT_FIELD) {
    throw keyFileError(what, '"hostname" is not a string of reasonable length', code);
  }
  if (typeof username !== 'string' || username.length > MAX_TEXT_FIELD) {
    throw keyFileError(what, '"username" is not a string of reasonable length', code);
  }
  if (kdf !== 'scrypt') throw keyFileError(what, '"kdf" is not "scrypt"', code);
  if (typeof N !== 'number' || typeof r !== 'number' || typeof p !== 'number') {
    throw keyFileError(what, 'scrypt N, r and p must be numbers', code);
  }
  const problem = scryptParamsProblem({ N, r, p });
  if (problem !== undefined) throw keyFileError(what, problem, code);
  const saltBytes = typeof salt === 'string' ? decodeBase64Strict(salt) : undefined;
  if (saltBytes === undefined || saltBytes.byteLength !== SALT_BYTES) {
    throw keyFileError(what, `"salt" is not ${SALT_BYTES} bytes of base64`, code);
  }
  const dataBytes = typeof data === 'string' && data.length <= MAX_DATA_ENVELOPE * 2 ? decodeBase64Strict(data) : undefined;
  if (dataBytes === undefined || dataBytes.byteLength <= ENVELOPE_OVERHEAD || dataBytes.byteLength > MAX_DATA_ENVELOPE) {
    throw keyFileError(what, '"data" is not a base64 envelope', code);
  }
  return {
    version: 1,
    created,
    hostname,
    username,
    kdf: 'scrypt',
    N,
    r,
    p,
    salt: salt as string,
    data: data as string,
  };
}

/** Parses and validates the stored bytes of a key file; any deviation is CORRUPT (a newer version: UNSUPPORTED_VERSION). */
export function parseKeyFile(bytes: Uint8Array, what: string): KeyFile {
  if (bytes.byteLength > MAX_KEY_FILE_BYTES) {
    throw keyFileError(what, `it has ${bytes.byteLength} bytes, more than ${MAX_KEY_FILE_BYTES}`, 'CORRUPT');
  }
  let value: unknown;
  try {
    value = JSON.parse(strictUtf8Decode(bytes)) as unknown;
  } catch (e) {
    throw keyFileError(what, 'not UTF-8 JSON', 'CORRUPT', e);
  }
  return checkKeyFile(value, what, 'CORRUPT');
}

/**
 * The master key, or null when `password` does not open this key file. CORRUPT when the key file is malformed or
 * opens to something that is not a master key document.
 */
export async function openKeyFile(doc: KeyFile, password: string, what = 'key file'): Promise<Uint8Array | null> {
  const valid = checkKeyFile(doc, what, 'CORRUPT');
  const salt = decodeBase64Strict(valid.salt) as Uint8Array;
  const envelope = decodeBase64Strict(valid.data) as Uint8Array;
  const wrappingKey = await deriveKey(password, salt, { N: valid.N, r: valid.r, p: valid.p });
  let plaintext: Uint8Array;
  try {
    plaintext = open(wrappingKey, envelope, metadataAad('key'), what);
  } catch (e) {
    if (e instanceof BackupError && e.code === 'CORRUPT') return null; // GCM cannot tell a wrong password from damage
    throw e;
  } finally {
    wrappingKey.fill(0);
  }
  try {
    let inner: unknown;
    try {
      inner = JSON.parse(strictUtf8Decode(plaintext)) as unknown;
    } catch (e) {
      throw keyFileError(what, 'its sealed data is not UTF-8 JSON', 'CORRUPT', e);
    }
    if (!isRecord(inner) || typeof inner['encrypt'] !== 'string') {
      throw keyFileError(what, 'its sealed data has no "encrypt" key', 'CORRUPT');
    }
    const masterKey = decodeBase64Strict(inner['encrypt']);
    if (masterKey === undefined || masterKey.byteLength !== KEY_BYTES) {
      throw keyFileError(what, `its sealed master key is not ${KEY_BYTES} bytes of base64`, 'CORRUPT');
    }
    return masterKey;
  } finally {
    plaintext.fill(0);
  }
}
