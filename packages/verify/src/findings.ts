/**
 * What a verification reports: typed findings (errors that put data at risk, and notes that do not), the snapshots
 * and file paths each one affects, progress events, and the closing summary. Plain data that round-trips through JSON.
 */
import type { BlobType, Id } from '@backup-manager/core-archive';

export const FINDING_KINDS = [
  // errors: data is lost or at risk
  'missing-blob', // a tree references a blob that no index lists
  'corrupt-blob', // a blob fails authentication, decompression or its content hash, or lies outside its pack
  'corrupt-pack-header', // a pack's header cannot be read or authenticated (this includes a truncated pack)
  'index-mismatch', // an index entry disagrees with the pack header (offset, length, type) or the pack lacks the blob
  'unreadable-snapshot', // a snapshot file is damaged
  'missing-pack', // an index lists a pack that is not in data/
  'unreadable-pack', // a pack exists but cannot be read (I/O error, permission, service failure)
  'unreadable-index', // an index file is damaged: its entries are unknown
  // notes: nothing is at risk
  'orphan-pack', // a pack in data/ that no index lists
  'stale-lock', // a lock of a process that is gone, or not refreshed for 30 minutes
] as const;

export type FindingKind = (typeof FINDING_KINDS)[number];

export const NOTE_KINDS: ReadonlySet<FindingKind> = new Set<FindingKind>(['orphan-pack', 'stale-lock']);

/** The file paths of one snapshot that a finding puts at risk. */
export interface AffectedSnapshot {
  snapshot: Id;
  time: string;
  hostname: string;
  /** the snapshot's backed-up paths, to say which source it is */
  sources: string[];
  /** snapshot paths at risk: a file whose data is affected, or a directory whose listing is (everything below it) */
  paths: string[];
  /** paths beyond the per-finding limit, counted but not listed */
  morePaths: number;
}

export interface Finding {
  kind: FindingKind;
  severity: 'error' | 'note';
  /** one or two sentences for a person, ending with what to do */
  message: string;
  /** the repository file concerned: `data/ab/ab…`, `index/…`, `snapshots/…`, `locks/…` */
  file?: string;
  pack?: Id;
  blob?: Id;
  blobType?: BlobType;
  index?: Id;
  snapshot?: Id;
  lock?: Id;
  /** how many blobs the finding puts at risk (pack-level findings) */
  blobsAtRisk?: number;
  /** filled in before the summary: which snapshots and paths are affected (errors that reach data only) */
  affects?: AffectedSnapshot[];
}

export type CheckPhase = 'locks' | 'index' | 'packs' | 'snapshots' | 'trees' | 'data' | 'impact';

export type CheckEvent =
  | { type: 'phase'; phase: CheckPhase; total?: number }
  | { type: 'progress'; phase: CheckPhase; done: number; total: number; bytesRead: number }
  | { type: 'finding'; finding: Finding }
  | { type: 'summary'; summary: CheckSummary };

export interface CheckCounts {
  snapshots: number;
  indexFiles: number;
  /** packs listed by the index */
  indexedPacks: number;
  /** pack files in data/ */
  packFiles: number;
  trees: number;
  /** file nodes seen while walking distinct trees */
  files: number;
  packsRead: number;
  blobsRead: number;
  bytesRead: number;
}

export interface CheckSummary {
  repository: string;
  repositoryId: Id;
  startedAt: string;
  durationMs: number;
  /** true when no error was found (notes do not count) */
  healthy: boolean;
  /** which pack data was read: `none`, `all`, `bucket 2/5`, `5%`, `500 MiB`, `rotation day 3/30` */
  dataScope: string;
  /** the ids of the packs whose data was read, sorted */
  packsRead: Id[];
  counts: CheckCounts;
  errors: number;
  notes: number;
  byKind: Partial<Record<FindingKind, number>>;
  findings: Finding[];
  /** newest readable snapshot of each source (host and paths); every older one was covered too */
  newestSnapshots: Id[];
  /** bytes of pack data read per second */
  throughputBytesPerSec: number;
}

export function isNote(kind: FindingKind): boolean {
  return NOTE_KINDS.has(kind);
}

export function dataFile(packId: Id): string {
  return `data/${packId.slice(0, 2)}/${packId}`;
}
