/**
 * Snapshot documents: validation on read, so that a damaged snapshot file gives a readable error naming it, and
 * the small helpers every command uses to show a snapshot.
 */
import { BackupError } from '../errors.ts';
import type { BackupType, SnapshotDocument, SnapshotSummary } from '../format.ts';

const ID = /^[0-9a-f]{64}$/;
const TYPES: ReadonlySet<string> = new Set<BackupType>(['full', 'incremental', 'differential']);

export function emptySummary(start: string): SnapshotSummary {
  return {
    filesNew: 0, filesChanged: 0, filesUnchanged: 0, filesSkipped: 0, dirs: 0,
    bytesNew: 0, bytesChanged: 0, bytesUnchanged: 0, totalFiles: 0, totalBytes: 0,
    dataAdded: 0, blobsAdded: 0, backupStart: start, backupEnd: start,
  };
}

function bad(what: string, detail: string): never {
  throw new BackupError('CORRUPT', `${what} is damaged: ${detail}`, { subject: what });
}

export function parseSnapshotDocument(v: unknown, what: string): SnapshotDocument {
  if (typeof v !== 'object' || v === null) bad(what, 'not an object');
  const s = v as Record<string, unknown>;
  if (s.version !== 1) bad(what, `unknown snapshot version ${String(s.version)}`);
  if (typeof s.time !== 'string' || Number.isNaN(Date.parse(s.time))) bad(what, 'invalid time');
  if (typeof s.tree !== 'string' || !ID.test(s.tree)) bad(what, 'invalid tree id');
  const strings = (x: unknown): x is string[] => Array.isArray(x) && x.every((e) => typeof e === 'string');
  if (!strings(s.paths)) bad(what, 'invalid paths');
  if (!strings(s.tags)) bad(what, 'invalid tags');
  if (typeof s.hostname !== 'string' || typeof s.username !== 'string') bad(what, 'invalid host or user');
  if (typeof s.type !== 'string' || !TYPES.has(s.type)) bad(what, 'invalid backup type');
  if (s.parent !== undefined && (typeof s.parent !== 'string' || !ID.test(s.parent))) bad(what, 'invalid parent id');
  if (typeof s.summary !== 'object' || s.summary === null) bad(what, 'missing summary');
  return v as SnapshotDocument;
}

/** Nanosecond-precision ISO time from a Date plus optional extra nanoseconds (process.hrtime gives those). */
export function isoTime(d: Date): string {
  return d.toISOString();
}

export function shortId(id: string): string {
  return id.slice(0, 8);
}
