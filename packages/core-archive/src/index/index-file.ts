/**
 * Index files (docs/format.md, "Index"): which blob is in which pack at which offset. Parsing is strict, because
 * the index decides what restore reads: any field out of place makes the whole file CORRUPT.
 */
import { BackupError } from '../errors.ts';
import type { ErrorCode } from '../errors.ts';
import type { BlobType, IndexBlobEntry, IndexDocument, IndexPackEntry } from '../format.ts';
import { isId } from '../crypto/hash.ts';

const UINT32_MAX = 0xffffffff;
const DOCUMENT_KEYS = ['packs', 'supersedes', 'version'];
const PACK_KEYS = ['blobs', 'id'];
const BLOB_KEYS = ['id', 'length', 'offset', 'rawLength', 'type'];

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function hasExactKeys(value: Record<string, unknown>, keys: readonly string[], exact = true): boolean {
  if (!exact) return true;
  // Counted without Object.keys: this runs for every blob of every index file when a repository opens.
  let own = 0;
  for (const k in value) {
    if (!Object.hasOwn(value, k)) continue;
    if (!keys.includes(k)) return false;
    own++;
  }
  return own === keys.length;
}

function isBlobType(value: unknown): value is BlobType {
  return value === 'data' || value === 'tree';
}

function isCount(value: unknown, max: number): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 && value <= max;
}

function checkIndex(value: unknown, what: string, code: ErrorCode, exactKeys: boolean): IndexDocument {
  const fail = (detail: string): BackupError =>
    new BackupError(
      code,
      code === 'CORRUPT'
        ? `${what} is not a valid index file (${detail}); run "repair index" to rebuild the index from the packs`
        : `invalid index document: ${detail}`,
      { subject: what },
    );
  if (!isRecord(value)) throw fail('not a JSON object');
  const { version, supersedes, packs } = value;
  if (typeof version === 'number' && Number.isInteger(version) && version > 1) {
    throw new BackupError(
      'UNSUPPORTED_VERSION',
      `${what} has index format version ${version}; this program reads version 1. Upgrade Backup Automation Manager`,
      { subject: what },
    );
  }
  if (version !== 1) throw fail('version is not 1');
  if (!hasExactKeys(value, DOCUMENT_KEYS, exactKeys)) throw fail('unexpected or missing top-level fields');
  if (!Array.isArray(supersedes)) throw fail('"supersedes" is not an array');
  const supersededIds: string[] = [];
  for (const id of supersedes as unknown[]) {
    if (!isId(id)) throw fail('"supersedes" holds something that is not an index id');
    supersededIds.push(id);
  }
  if (!Array.isArray(packs)) throw fail('"packs" is not an array');
  const packEntries: IndexPackEntry[] = [];
  for (const [p, pack] of (packs as unknown[]).entries()) {
    if (!isRecord(pack) || !hasExactKeys(pack, PACK_KEYS, exactKeys)) throw fail(`pack ${p} does not have exactly "id" and "blobs"`);
    const { id: packId, blobs } = pack;
    if (!isId(packId)) throw fail(`pack ${p} has an invalid id`);
    if (!Array.isArray(blobs)) throw fail(`pack ${packId}: "blobs" is not an array`);
    const blobEntries: IndexBlobEntry[] = [];
    for (let b = 0; b < blobs.length; b++) {
      const blob: unknown = blobs[b];
      if (!isRecord(blob) || !hasExactKeys(blob, BLOB_KEYS, exactKeys)) {
        throw fail(`pack ${packId} blob ${b} does not have exactly id, type, offset, length, rawLength`);
      }
      const { id, type, offset, length, rawLength } = blob;
      if (!isId(id)) throw fail(`pack ${packId} blob ${b} has an invalid id`);
      if (!isBlobType(type)) throw fail(`blob ${id} has an unknown type`);
      if (!isCount(offset, Number.MAX_SAFE_INTEGER)) throw fail(`blob ${id} has an invalid offset`);
      if (!isCount(length, UINT32_MAX) || length === 0) throw fail(`blob ${id} has an invalid length`);
      if (!isCount(rawLength, UINT32_MAX)) throw fail(`blob ${id} has an invalid rawLength`);
      if (!Number.isSafeInteger(offset + length)) throw fail(`blob ${id} ends beyond any possible pack`);
      // A parsed entry has exactly these fields (checked above) and belongs to no one else: it is kept as it is
      // rather than copied, which saves an object per blob when a repository opens.
      blobEntries.push(exactKeys ? (blob as unknown as IndexBlobEntry) : { id, type, offset, length, rawLength });
    }
    packEntries.push({ id: packId, blobs: blobEntries });
  }
  return { version: 1, supersedes: supersededIds, packs: packEntries };
}

/** Validates a parsed index file, returning a fresh copy holding only the validated fields. */
export function parseIndexDocument(value: unknown, what: string): IndexDocument {
  return checkIndex(value, what, 'CORRUPT', true);
}

/**
 * An index document listing `packs` and superseding the index files `supersedes`, holding copies of only the format's
 * fields (extra properties on the inputs are dropped). Invalid input is INVALID_ARGUMENT.
 */
export function buildIndexDocument(packs: readonly IndexPackEntry[], supersedes: readonly string[]): IndexDocument {
  return checkIndex({ version: 1, supersedes, packs }, 'new index', 'INVALID_ARGUMENT', false);
}
