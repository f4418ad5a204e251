/**
 * The repository's on-disk document shapes (format version 1), shared by every layer. docs/format.md is the
 * normative description; these types mirror it. Everything here is plain data that round-trips through JSON.
 */

export const FORMAT_VERSION = 1;

export type BlobType = 'data' | 'tree';

/** A 32-byte SHA-256 as 64 lowercase hex characters. */
export type Id = string;

/** Plaintext of a key file (keys/<id>), stored unencrypted; `data` is the master key sealed with the derived key. */
export interface KeyFile {
  version: 1;
  created: string;
  hostname: string;
  username: string;
  kdf: 'scrypt';
  N: number;
  r: number;
  p: number;
  /** base64, 32 bytes */
  salt: string;
  /** base64 envelope (AAD "bam:key") of the JSON MasterKeyDocument */
  data: string;
}

export interface MasterKeyDocument {
  /** base64, 32 bytes: the AES-256-GCM key for every blob and metadata file */
  encrypt: string;
}

/** Plaintext of the repository config file (encrypted, AAD "bam:config"). */
export interface RepoConfigDocument {
  version: number;
  /** random repository id, 64 hex */
  id: Id;
  created: string;
  chunker: {
    /** hex, 32 bytes: seed of the gear table; secret so that chunk boundaries reveal nothing about content */
    secret: string;
    minSize: number;
    avgSize: number;
    maxSize: number;
  };
  /** target pack size in bytes */
  packSize: number;
  compression: 'zstd' | 'none';
  compressionLevel: number;
  /** when true, no repository file other than a lock may ever be deleted */
  appendOnly: boolean;
}

export interface IndexBlobEntry {
  id: Id;
  type: BlobType;
  /** byte offset of the blob's envelope inside the pack */
  offset: number;
  /** bytes of the envelope in the pack */
  length: number;
  /** plaintext bytes after decompression */
  rawLength: number;
}

export interface IndexPackEntry {
  id: Id;
  blobs: IndexBlobEntry[];
}

/** Plaintext of an index file (index/<id>, encrypted, AAD "bam:index"). */
export interface IndexDocument {
  version: 1;
  /** index files whose content this one includes; readers ignore a superseded index when this one is present */
  supersedes: Id[];
  packs: IndexPackEntry[];
}

export type NodeType = 'file' | 'dir' | 'symlink' | 'fifo' | 'socket' | 'chardev' | 'blockdev';

/** One entry of a tree (directory listing). Times are nanoseconds since the epoch, as decimal strings. */
export interface TreeNode {
  name: string;
  type: NodeType;
  /** permission and set-id/sticky bits (st_mode & 0o7777) */
  mode: number;
  uid: number;
  gid: number;
  mtimeNs: string;
  atimeNs: string;
  ctimeNs: string;
  /** device and inode as decimal strings, for hard links and change detection */
  dev: string;
  inode: string;
  nlink: number;
  /** files: logical size in bytes */
  size?: number;
  /** files: data blob ids in order */
  content?: Id[];
  /** files: SHA-256 of the whole content */
  sha256?: string;
  /** dirs: tree blob id of the listing */
  subtree?: Id;
  /** symlinks: the link text, never followed */
  linkTarget?: string;
  /** char and block devices: st_rdev */
  rdev?: number;
}

/** Plaintext of a tree blob. Nodes are sorted by name (UTF-16 code unit order), names unique. */
export interface TreeDocument {
  nodes: TreeNode[];
}

export type BackupType = 'full' | 'incremental' | 'differential';

export interface SnapshotSummary {
  filesNew: number;
  filesChanged: number;
  filesUnchanged: number;
  filesSkipped: number;
  dirs: number;
  bytesNew: number;
  bytesChanged: number;
  bytesUnchanged: number;
  totalFiles: number;
  totalBytes: number;
  /** stored bytes (after compression and encryption) this snapshot added to the repository */
  dataAdded: number;
  blobsAdded: number;
  backupStart: string;
  backupEnd: string;
}

/** Plaintext of a snapshot file (snapshots/<id>, encrypted, AAD "bam:snapshot"). */
export interface SnapshotDocument {
  version: 1;
  /** ISO 8601 with nanoseconds allowed */
  time: string;
  tree: Id;
  paths: string[];
  hostname: string;
  username: string;
  uid: number;
  gid: number;
  tags: string[];
  type: BackupType;
  /** the snapshot whose metadata this one trusted for unchanged files (incremental/differential), if any */
  parent?: Id;
  excludes: string[];
  programVersion: string;
  summary: SnapshotSummary;
  /** set by `repair snapshots`: the id of the damaged snapshot this one replaces */
  original?: Id;
  repaired?: boolean;
}

/** Plaintext of a lock file (locks/<id>, encrypted, AAD "bam:lock"). */
export interface LockDocument {
  version: 1;
  time: string;
  exclusive: boolean;
  hostname: string;
  username: string;
  pid: number;
  /** Linux only: the process start time in clock ticks since boot (/proc/PID/stat field 22), to detect PID reuse */
  processStart?: string;
  operation: string;
}
