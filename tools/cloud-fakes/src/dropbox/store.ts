// The fake Dropbox's namespace: files and folders keyed by their lower-cased path (Dropbox paths are
// case-insensitive and case-preserving), write-mode conflict rules, quota accounting, and a change log that lets
// list_folder/continue report what changed after a listing finished.
import { randomBytes } from 'node:crypto';
import { dropboxContentHash } from './content-hash.ts';
import type { Tagged } from './replies.ts';

export interface DropboxFileRecord {
  id: string;
  name: string;
  path_display: string;
  content: Buffer;
  rev: string;
  content_hash: string;
  server_modified: string;
  client_modified: string;
}

export interface DropboxFolderRecord {
  id: string;
  name: string;
  path_display: string;
}

export interface DeletedRecord {
  name: string;
  path_display: string;
}

export type WriteModeArg = { kind: 'add' } | { kind: 'overwrite' } | { kind: 'update'; rev: string };

export interface WriteFileOptions {
  mode: WriteModeArg;
  autorename: boolean;
  strictConflict: boolean;
  clientModified: string | undefined;
  quotaBytes: number;
}

export type Entry =
  | { kind: 'file'; lower: string; record: DropboxFileRecord }
  | { kind: 'folder'; lower: string; record: DropboxFolderRecord };

export type WriteOutcome<T> = { ok: T } | { error: Tagged };

/** Parsed path: `root`, a list of components, or a reason Dropbox would call it malformed. */
export type ParsedPath = { kind: 'root' } | { kind: 'components'; components: string[] } | { kind: 'malformed' };

/** Splits '/a/B/c' into components; rejects empty components ('//', trailing '/') and '.'/'..'. */
export function parsePath(raw: string): ParsedPath {
  if (raw === '') return { kind: 'root' };
  if (!raw.startsWith('/')) return { kind: 'malformed' };
  const components = raw.slice(1).split('/');
  if (components.some((c) => c === '' || c === '.' || c === '..')) return { kind: 'malformed' };
  return { kind: 'components', components };
}

export function lowerOf(components: readonly string[]): string {
  return components.length === 0 ? '' : `/${components.join('/')}`.toLowerCase();
}

function parentLower(lower: string): string {
  return lower.slice(0, lower.lastIndexOf('/'));
}

/** Dropbox timestamps: `%Y-%m-%dT%H:%M:%SZ`, no fraction. */
export function dropboxTimestamp(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function newId(): string {
  return `id:${randomBytes(16).toString('base64url').slice(0, 22)}`;
}

function withSuffix(name: string, suffix: string): string {
  const dot = name.lastIndexOf('.');
  return dot > 0 ? `${name.slice(0, dot)} ${suffix}${name.slice(dot)}` : `${name} ${suffix}`;
}

export class DropboxStore {
  /** Files keyed by path_lower. */
  readonly files = new Map<string, DropboxFileRecord>();
  /** Folders keyed by path_lower (the root '' is implicit and never stored). */
  readonly folders = new Map<string, DropboxFolderRecord>();
  /** Last known name of deleted paths, for get_metadata include_deleted and list_folder/continue. */
  readonly deleted = new Map<string, DeletedRecord>();
  private readonly now: () => Date;
  private readonly changes: { seq: number; lower: string }[] = [];
  private seq = 0;
  private revCounter = 0;
  private readonly revPrefix = randomBytes(3).toString('hex');

  constructor(now: () => Date) {
    this.now = now;
  }

  get changeSeq(): number {
    return this.seq;
  }

  usedBytes(): number {
    let used = 0;
    for (const file of this.files.values()) used += file.content.byteLength;
    return used;
  }

  get(lower: string): Entry | undefined {
    const file = this.files.get(lower);
    if (file) return { kind: 'file', lower, record: file };
    const folder = this.folders.get(lower);
    if (folder) return { kind: 'folder', lower, record: folder };
    return undefined;
  }

  findById(id: string): Entry | undefined {
    for (const [lower, record] of this.files) if (record.id === id) return { kind: 'file', lower, record };
    for (const [lower, record] of this.folders) if (record.id === id) return { kind: 'folder', lower, record };
    return undefined;
  }

  findByRev(rev: string): Entry | undefined {
    for (const [lower, record] of this.files) if (record.rev === rev) return { kind: 'file', lower, record };
    return undefined;
  }

  /** Metadata in the polymorphic `Metadata` form (with `.tag`), or without it where the route declares a subtype. */
  metadata(entry: Entry, withTag: boolean): Record<string, unknown> {
    const tag = withTag ? { '.tag': entry.kind } : {};
    const common = { name: entry.record.name, path_lower: entry.lower, path_display: entry.record.path_display };
    if (entry.kind === 'folder') return { ...tag, ...common, id: entry.record.id };
    const file = entry.record;
    return {
      ...tag,
      ...common,
      id: file.id,
      client_modified: file.client_modified,
      server_modified: file.server_modified,
      rev: file.rev,
      size: file.content.byteLength,
      is_downloadable: true,
      content_hash: file.content_hash,
    };
  }

  deletedMetadata(lower: string): Record<string, unknown> | undefined {
    const gone = this.deleted.get(lower);
    if (!gone) return undefined;
    return { '.tag': 'deleted', name: gone.name, path_lower: lower, path_display: gone.path_display };
  }

  /** Display path: existing ancestors keep their stored casing, new components keep the caller's. */
  private displayPathFor(components: readonly string[]): string {
    let display = '';
    for (let i = 0; i < components.length; i++) {
      const existing = this.folders.get(lowerOf(components.slice(0, i + 1)));
      display += `/${existing && i < components.length - 1 ? existing.name : components[i]}`;
    }
    return display;
  }

  private fileAncestor(components: readonly string[]): boolean {
    for (let i = 1; i < components.length; i++) {
      if (this.files.has(lowerOf(components.slice(0, i)))) return true;
    }
    return false;
  }

  private record(lower: string): void {
    this.seq += 1;
    this.changes.push({ seq: this.seq, lower });
  }

  private ensureParents(components: readonly string[]): void {
    for (let i = 1; i < components.length; i++) {
      const prefix = components.slice(0, i);
      const lower = lowerOf(prefix);
      if (!this.folders.has(lower)) {
        const name = prefix[prefix.length - 1] ?? '';
        this.folders.set(lower, { id: newId(), name, path_display: this.displayPathFor(prefix) });
        this.deleted.delete(lower);
        this.record(lower);
      }
    }
  }

  private nextRev(): string {
    this.revCounter += 1;
    return `${this.revPrefix}${this.revCounter.toString(16).padStart(9, '0')}`;
  }

  private freeName(components: readonly string[], suffixFor: (n: number) => string): string[] {
    const name = components[components.length - 1] ?? '';
    for (let n = 1; ; n++) {
      const candidate = [...components.slice(0, -1), withSuffix(name, suffixFor(n))];
      if (!this.get(lowerOf(candidate))) return candidate;
    }
  }

  /** files/upload and upload_session/finish: applies Dropbox's WriteMode rules, returns the file or a WriteError. */
  writeFile(components: string[], content: Buffer, options: WriteFileOptions): WriteOutcome<Entry> {
    if (this.fileAncestor(components)) return { error: conflict('file_ancestor') };
    const hash = dropboxContentHash(content);
    let target = components;
    let existing = this.get(lowerOf(target));
    if (existing?.kind === 'folder') {
      if (!options.autorename) return { error: conflict('folder') };
      target = this.freeName(target, (n) => `(${n})`);
      existing = undefined;
    } else if (existing?.kind === 'file') {
      const identical = existing.record.content_hash === hash;
      const mode = options.mode;
      let conflicting: boolean;
      if (mode.kind === 'overwrite') conflicting = false;
      else if (mode.kind === 'add') conflicting = options.strictConflict || !identical;
      else conflicting = existing.record.rev !== mode.rev || (options.strictConflict && identical);
      if (conflicting) {
        if (!options.autorename) return { error: conflict('file') };
        target =
          mode.kind === 'update'
            ? this.freeName(target, (n) => (n === 1 ? '(conflicted copy)' : `(conflicted copy ${n})`))
            : this.freeName(target, (n) => `(${n})`);
        existing = undefined;
      } else if (identical) {
        // WriteMode rule (c): a file with identical contents is not rewritten and keeps its rev.
        return { ok: existing };
      }
    } else if (options.mode.kind === 'update' && options.strictConflict) {
      return { error: conflict('file') };
    }

    const replacedBytes = existing?.kind === 'file' ? existing.record.content.byteLength : 0;
    if (this.usedBytes() - replacedBytes + content.byteLength > options.quotaBytes) {
      return { error: { '.tag': 'insufficient_space' } };
    }

    this.ensureParents(target);
    const lower = lowerOf(target);
    const now = dropboxTimestamp(this.now());
    const previous = existing?.kind === 'file' ? existing.record : undefined;
    const record: DropboxFileRecord = {
      id: previous?.id ?? newId(),
      name: previous?.name ?? target[target.length - 1] ?? '',
      path_display: previous?.path_display ?? this.displayPathFor(target),
      content,
      rev: this.nextRev(),
      content_hash: hash,
      server_modified: now,
      client_modified: options.clientModified ?? now,
    };
    this.files.set(lower, record);
    this.deleted.delete(lower);
    this.record(lower);
    return { ok: { kind: 'file', lower, record } };
  }

  /** files/create_folder_v2. */
  createFolder(components: string[], autorename: boolean): WriteOutcome<Entry> {
    if (this.fileAncestor(components)) return { error: conflict('file_ancestor') };
    let target = components;
    const existing = this.get(lowerOf(target));
    if (existing) {
      if (!autorename) return { error: conflict(existing.kind) };
      target = this.freeName(target, (n) => `(${n})`);
    }
    this.ensureParents(target);
    const lower = lowerOf(target);
    const record: DropboxFolderRecord = {
      id: newId(),
      name: target[target.length - 1] ?? '',
      path_display: this.displayPathFor(target),
    };
    this.folders.set(lower, record);
    this.deleted.delete(lower);
    this.record(lower);
    return { ok: { kind: 'folder', lower, record } };
  }

  /** files/delete_v2: removes a file, or a folder with everything under it. */
  remove(entry: Entry): void {
    const doomed: [string, DropboxFileRecord | DropboxFolderRecord][] = [[entry.lower, entry.record]];
    if (entry.kind === 'folder') {
      const prefix = `${entry.lower}/`;
      for (const [lower, record] of this.files) if (lower.startsWith(prefix)) doomed.push([lower, record]);
      for (const [lower, record] of this.folders) if (lower.startsWith(prefix)) doomed.push([lower, record]);
    }
    for (const [lower, record] of doomed) {
      this.files.delete(lower);
      this.folders.delete(lower);
      this.deleted.set(lower, { name: record.name, path_display: record.path_display });
    }
    // Like Dropbox, only the top deleted entry is reported; its descendants are implied.
    this.record(entry.lower);
  }

  private inScope(lower: string, scope: string, recursive: boolean): boolean {
    if (recursive) return lower === scope ? scope !== '' : lower.startsWith(`${scope}/`);
    return lower !== scope && parentLower(lower) === scope;
  }

  /** Entries of a folder listing, sorted by path_lower (parents before their children). */
  list(scope: string, recursive: boolean): Record<string, unknown>[] {
    const entries: Entry[] = [];
    for (const [lower, record] of this.folders) {
      if (this.inScope(lower, scope, recursive)) entries.push({ kind: 'folder', lower, record });
    }
    for (const [lower, record] of this.files) {
      if (this.inScope(lower, scope, recursive)) entries.push({ kind: 'file', lower, record });
    }
    entries.sort((a, b) => (a.lower < b.lower ? -1 : a.lower > b.lower ? 1 : 0));
    return entries.map((e) => this.metadata(e, true));
  }

  /** What changed in scope after `sinceSeq`: current metadata, or DeletedMetadata for what is gone. */
  changesSince(scope: string, recursive: boolean, sinceSeq: number): Record<string, unknown>[] {
    const touched = new Set<string>();
    for (const change of this.changes) {
      if (change.seq > sinceSeq && this.inScope(change.lower, scope, recursive)) touched.add(change.lower);
    }
    const lowers = [...touched].sort();
    const result: Record<string, unknown>[] = [];
    for (const lower of lowers) {
      const entry = this.get(lower);
      const metadata = entry ? this.metadata(entry, true) : this.deletedMetadata(lower);
      if (metadata) result.push(metadata);
    }
    return result;
  }
}

function conflict(what: 'file' | 'folder' | 'file_ancestor'): Tagged {
  return { '.tag': 'conflict', conflict: { '.tag': what } };
}
