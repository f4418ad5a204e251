// The in-memory OneDrive drive behind the fake: a tree of driveItems addressed by id or by path (names compared
// case-insensitively, as OneDrive does), a recycle bin that still counts against the quota, and the quota facet
// (total / used / remaining / deleted / state) that GET /me/drive reports.

import { createHash, randomBytes } from 'node:crypto';
import { quickXorHash } from './quick-xor-hash.ts';

export type ConflictBehavior = 'fail' | 'replace' | 'rename';

export const CONFLICT_BEHAVIORS: readonly ConflictBehavior[] = ['fail', 'replace', 'rename'];

export interface StoredItem {
  readonly id: string;
  name: string;
  parentId: string | undefined;
  readonly isFolder: boolean;
  content: Buffer;
  mimeType: string;
  readonly createdDateTime: string;
  lastModifiedDateTime: string;
  /** Bumped on every change of content or name; part of eTag/cTag. */
  version: number;
  quickXorHash: string;
  sha256Hash: string;
  /** Set while the item is in the recycle bin. */
  deletedDateTime: string | undefined;
  /** Which delete put it in the recycle bin (items deleted together share it); undefined while live. */
  recycleBatch: number | undefined;
}

/** The inspectable view of an item that tests get from the fake. */
export interface OnedriveItem {
  id: string;
  name: string;
  /** Decoded path from the drive root, e.g. "/backups/pack-1.bin"; "/" for the root. */
  path: string;
  parentReference: { driveId: string; id?: string; path?: string };
  size: number;
  folder?: { childCount: number };
  file?: { mimeType: string; hashes: { quickXorHash: string; sha256Hash: string } };
  /** True while the item sits in the recycle bin (it still counts in quota.deleted). */
  deleted: boolean;
  /** The stored bytes (empty for folders); do not mutate. */
  content: Buffer;
}

export type QuotaState = 'normal' | 'nearing' | 'critical' | 'exceeded';

export interface DriveQuota {
  total: number;
  used: number;
  remaining: number;
  deleted: number;
  state: QuotaState;
}

const MIME_BY_EXTENSION: Readonly<Record<string, string>> = {
  txt: 'text/plain',
  json: 'application/json',
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  png: 'image/png',
  pdf: 'application/pdf',
  zip: 'application/zip',
};

export interface DriveStoreOptions {
  quotaBytes: number;
  now: () => Date;
}

export class DriveStore {
  readonly driveId: string;
  readonly rootId: string;
  #quotaBytes: number;
  readonly #now: () => Date;
  readonly #items = new Map<string, StoredItem>();
  #nextId = 101;
  #nextRecycleBatch = 1;

  constructor(options: DriveStoreOptions) {
    this.#quotaBytes = options.quotaBytes;
    this.#now = options.now;
    this.driveId = randomBytes(8).toString('hex').toUpperCase();
    const root = this.#newItem(undefined, 'root', true, Buffer.alloc(0));
    this.rootId = root.id;
  }

  get quotaBytes(): number {
    return this.#quotaBytes;
  }

  setQuota(totalBytes: number): void {
    if (!(Number.isSafeInteger(totalBytes) && totalBytes >= 0)) {
      throw new RangeError(`quota must be a non-negative integer number of bytes, got ${totalBytes}`);
    }
    this.#quotaBytes = totalBytes;
  }

  /** A live (not recycled) item by id. */
  get(id: string): StoredItem | undefined {
    const item = this.#items.get(id);
    return item === undefined || item.deletedDateTime !== undefined ? undefined : item;
  }

  /** Live children, ordered by name as OneDrive lists them by default. */
  childrenOf(folderId: string): StoredItem[] {
    const children: StoredItem[] = [];
    for (const item of this.#items.values()) {
      if (item.parentId === folderId && item.deletedDateTime === undefined) children.push(item);
    }
    return children.sort((a, b) => compareNames(a.name, b.name));
  }

  findChild(folderId: string, name: string): StoredItem | undefined {
    const wanted = name.toLowerCase();
    for (const item of this.#items.values()) {
      if (item.parentId === folderId && item.deletedDateTime === undefined && item.name.toLowerCase() === wanted) {
        return item;
      }
    }
    return undefined;
  }

  /** Walks `segments` down from `fromId`; `missing` is how many leading segments resolved before one did not. */
  resolve(fromId: string, segments: readonly string[]): { item: StoredItem } | { missing: number } {
    const start = this.get(fromId);
    if (start === undefined) return { missing: 0 };
    let current: StoredItem = start;
    for (let i = 0; i < segments.length; i += 1) {
      const segment = segments[i] ?? '';
      const next: StoredItem | undefined = current.isFolder ? this.findChild(current.id, segment) : undefined;
      if (next === undefined) return { missing: i };
      current = next;
    }
    return { item: current };
  }

  /** Path segments from the root to the item (empty for the root). */
  segmentsOf(item: StoredItem): string[] {
    const segments: string[] = [];
    let current: StoredItem | undefined = item;
    while (current !== undefined && current.parentId !== undefined) {
      segments.unshift(current.name);
      current = this.#items.get(current.parentId);
    }
    return segments;
  }

  size(item: StoredItem): number {
    if (!item.isFolder) return item.content.length;
    let total = 0;
    for (const child of this.childrenOf(item.id)) total += this.size(child);
    return total;
  }

  createFolder(parentId: string, name: string): StoredItem {
    return this.#newItem(parentId, name, true, Buffer.alloc(0));
  }

  createFile(parentId: string, name: string, content: Buffer): StoredItem {
    return this.#newItem(parentId, name, false, content);
  }

  replaceContent(item: StoredItem, content: Buffer): void {
    item.content = content;
    item.version += 1;
    item.lastModifiedDateTime = this.#now().toISOString();
    item.quickXorHash = quickXorHash(content);
    item.sha256Hash = sha256Hex(content);
  }

  /** "name 1.ext", "name 2.ext", … : the first name not taken in the folder, as OneDrive's rename behaviour picks. */
  uniqueName(parentId: string, name: string): string {
    if (this.findChild(parentId, name) === undefined) return name;
    const dot = name.lastIndexOf('.');
    const stem = dot > 0 ? name.slice(0, dot) : name;
    const extension = dot > 0 ? name.slice(dot) : '';
    for (let n = 1; ; n += 1) {
      const candidate = `${stem} ${n}${extension}`;
      if (this.findChild(parentId, candidate) === undefined) return candidate;
    }
  }

  /** Moves the item and everything under it to the recycle bin. */
  recycle(item: StoredItem): void {
    const at = this.#now().toISOString();
    const batch = this.#nextRecycleBatch++;
    for (const member of this.#subtree(item)) {
      member.deletedDateTime = at;
      member.recycleBatch = batch;
    }
  }

  /** Removes the item and everything under it for good (no recycle bin). */
  permanentlyDelete(item: StoredItem): void {
    for (const member of this.#subtree(item)) this.#items.delete(member.id);
  }

  emptyRecycleBin(): void {
    for (const item of [...this.#items.values()]) {
      if (item.deletedDateTime !== undefined) this.#items.delete(item.id);
    }
  }

  recycleBinBytes(): number {
    let total = 0;
    for (const item of this.#items.values()) {
      if (item.deletedDateTime !== undefined && !item.isFolder) total += item.content.length;
    }
    return total;
  }

  /** Bytes counted against the quota: live files and the recycle bin. */
  usedBytes(): number {
    let total = 0;
    for (const item of this.#items.values()) if (!item.isFolder) total += item.content.length;
    return total;
  }

  /** True when storing `additionalBytes` more would go over the quota. */
  wouldExceedQuota(additionalBytes: number): boolean {
    return this.usedBytes() + additionalBytes > this.#quotaBytes;
  }

  quota(options: { forceFull?: boolean } = {}): DriveQuota {
    const total = this.#quotaBytes;
    const used = options.forceFull === true ? Math.max(total, this.usedBytes()) : this.usedBytes();
    const remaining = Math.max(0, total - used);
    let state: QuotaState = 'normal';
    if (remaining <= 0) state = 'exceeded';
    else if (remaining < total * 0.01) state = 'critical';
    else if (remaining < total * 0.1) state = 'nearing';
    return { total, used, remaining, deleted: this.recycleBinBytes(), state };
  }

  /** Every item, live and recycled, as the inspectable view (the root included). */
  snapshot(): OnedriveItem[] {
    return [...this.#items.values()].map((item) => this.view(item));
  }

  view(item: StoredItem): OnedriveItem {
    const segments = this.segmentsOf(item);
    const parent = item.parentId === undefined ? undefined : this.#items.get(item.parentId);
    const parentSegments = parent === undefined ? [] : this.segmentsOf(parent);
    const view: OnedriveItem = {
      id: item.id,
      name: item.name,
      path: `/${segments.join('/')}`,
      parentReference:
        parent === undefined
          ? { driveId: this.driveId }
          : { driveId: this.driveId, id: parent.id, path: drivePath(parentSegments) },
      size: item.isFolder ? this.#subtreeBytes(item) : item.content.length,
      deleted: item.deletedDateTime !== undefined,
      content: item.content,
    };
    if (item.isFolder) view.folder = { childCount: this.#childCount(item) };
    else view.file = { mimeType: item.mimeType, hashes: { quickXorHash: item.quickXorHash, sha256Hash: item.sha256Hash } };
    return view;
  }

  childCount(item: StoredItem): number {
    return this.#childCount(item);
  }

  #childCount(item: StoredItem): number {
    let count = 0;
    for (const other of this.#items.values()) {
      if (other.parentId === item.id && other.recycleBatch === item.recycleBatch) count += 1;
    }
    return count;
  }

  /** Size of a folder in whichever state it is in (live, or recycled together with its members). */
  #subtreeBytes(item: StoredItem): number {
    let total = 0;
    for (const member of this.#subtree(item)) if (!member.isFolder) total += member.content.length;
    return total;
  }

  #subtree(item: StoredItem): StoredItem[] {
    const members: StoredItem[] = [item];
    for (let i = 0; i < members.length; i += 1) {
      const current = members[i];
      if (current === undefined || !current.isFolder) continue;
      for (const other of this.#items.values()) {
        if (other.parentId === current.id && other.recycleBatch === item.recycleBatch) members.push(other);
      }
    }
    return members;
  }

  #newItem(parentId: string | undefined, name: string, isFolder: boolean, content: Buffer): StoredItem {
    const at = this.#now().toISOString();
    const item: StoredItem = {
      id: `${this.driveId}!${this.#nextId++}`,
      name,
      parentId,
      isFolder,
      content,
      mimeType: isFolder ? '' : mimeTypeFor(name),
      createdDateTime: at,
      lastModifiedDateTime: at,
      version: 1,
      quickXorHash: isFolder ? '' : quickXorHash(content),
      sha256Hash: isFolder ? '' : sha256Hex(content),
      deletedDateTime: undefined,
      recycleBatch: undefined,
    };
    this.#items.set(item.id, item);
    return item;
  }
}

/** `parentReference.path` form: "/drive/root:" followed by the decoded path. */
export function drivePath(segments: readonly string[]): string {
  return segments.length === 0 ? '/drive/root:' : `/drive/root:/${segments.join('/')}`;
}

function mimeTypeFor(name: string): string {
  const dot = name.lastIndexOf('.');
  const extension = dot >= 0 ? name.slice(dot + 1).toLowerCase() : '';
  return MIME_BY_EXTENSION[extension] ?? 'application/octet-stream';
}

function sha256Hex(content: Buffer): string {
  // OneDrive reports its hex digests in upper case.
  return createHash('sha256').update(content).digest('hex').toUpperCase();
}

function compareNames(a: string, b: string): number {
  const x = a.toLowerCase();
  const y = b.toLowerCase();
  return x < y ? -1 : x > y ? 1 : 0;
}
