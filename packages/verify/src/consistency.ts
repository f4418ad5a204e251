/**
 * Cross-destination consistency: compares a repository with its copies at other destinations through the Backend
 * contract alone (no password needed), so a cloud provider's backend plugs in as easily as a local folder.
 * Every repository file except `config` is named by the SHA-256 of its bytes, so each copy proves itself: a file is
 * good when its hash equals its name. Per destination the report lists files missing, extra, and different
 * (wrong size, or content that does not match its name); `config` is compared by hash with the primary's.
 * Locks are skipped: they are per-destination and short-lived.
 */
import { createHash } from 'node:crypto';
import type { Backend, FileType } from '@backup-manager/core-archive';
import { mapLimit, throwIfAborted } from './util.ts';

export interface Destination {
  /** how the report names it: a folder, a provider and path */
  name: string;
  backend: Backend;
}

export interface FileRef {
  type: FileType;
  name: string;
  size: number;
}

export interface FileDifference extends FileRef {
  /** size on the primary */
  expectedSize: number;
  reason: 'size' | 'content' | 'config';
  message: string;
}

export interface DestinationReport {
  name: string;
  files: number;
  bytes: number;
  /** on the primary, not here */
  missing: FileRef[];
  /** here, not on the primary */
  extra: FileRef[];
  different: FileDifference[];
  /** files whose content could not be read */
  unreadable: { type: FileType; name: string; message: string }[];
  consistent: boolean;
}

export interface ConsistencyReport {
  primary: DestinationReport & { corrupt: FileDifference[] };
  mirrors: DestinationReport[];
  /** true when every mirror holds exactly the primary's files, every file matches its name, and configs agree */
  consistent: boolean;
  hashed: boolean;
  bytesRead: number;
  durationMs: number;
}

export type ConsistencyEvent = { type: 'progress'; destination: string; done: number; total: number; bytesRead: number };

export interface ConsistencyOptions {
  /** read and hash every file (default true); false compares names and sizes only */
  hash?: boolean;
  /** files read at once per destination (default 4) */
  concurrency?: number;
  signal?: AbortSignal;
  onEvent?: (e: ConsistencyEvent) => void;
}

const TYPES: readonly FileType[] = ['config', 'keys', 'snapshots', 'index', 'data'];
const READ_PIECE = 8 * 1024 * 1024;

function configMessage(destination: string): string {
  return `config on ${destination} differs from the primary's: it is another repository, or a damaged copy`;
}

function keyOf(type: FileType, name: string): string {
  return `${type}/${name}`;
}

async function listing(backend: Backend): Promise<Map<string, FileRef>> {
  const out = new Map<string, FileRef>();
  for (const type of TYPES) {
    for await (const f of backend.list(type)) out.set(keyOf(type, f.name), { type, name: f.name, size: f.size });
  }
  return out;
}

/** SHA-256 of a file read in ranged pieces, so memory stays flat whatever the pack size. */
async function hashOf(backend: Backend, f: FileRef): Promise<string> {
  const h = createHash('sha256');
  for (let offset = 0; offset < f.size; offset += READ_PIECE) {
    h.update(await backend.load({ type: f.type, name: f.name }, offset, Math.min(READ_PIECE, f.size - offset)));
  }
  return h.digest('hex');
}

export async function checkConsistency(primary: Destination, mirrors: readonly Destination[], options: ConsistencyOptions = {}): Promise<ConsistencyReport> {
  const t0 = Date.now();
  const hash = options.hash !== false;
  let bytesRead = 0;
  const hashes = new Map<string, string>(); // config hash per destination name

  /** Hashes every file of one destination: corrupt copies and unreadable files are returned, config's hash kept. */
  const scan = async (d: Destination, files: Map<string, FileRef>, only?: (f: FileRef) => boolean): Promise<{ corrupt: FileDifference[]; unreadable: DestinationReport['unreadable'] }> => {
    const corrupt: FileDifference[] = [];
    const unreadable: DestinationReport['unreadable'] = [];
    if (!hash) return { corrupt, unreadable };
    const list = [...files.values()].filter((f) => !only || only(f));
    let done = 0;
    await mapLimit(list, options.concurrency ?? 4, async (f) => {
      throwIfAborted(options.signal, 'consistency check');
      let digest: string;
      try {
        digest = await hashOf(d.backend, f);
      } catch (e) {
        unreadable.push({ type: f.type, name: f.name, message: (e as Error).message });
        return;
      }
      bytesRead += f.size;
      if (f.type === 'config') hashes.set(d.name, digest);
      else if (digest !== f.name) {
        corrupt.push({ ...f, expectedSize: f.size, reason: 'content', message: `${keyOf(f.type, f.name)} on ${d.name}: its content does not match its name (SHA-256 ${digest.slice(0, 12)}…); the copy is damaged` });
      }
      done++;
      options.onEvent?.({ type: 'progress', destination: d.name, done, total: list.length, bytesRead });
    });
    return { corrupt, unreadable };
  };

  const primaryFiles = await listing(primary.backend);
  const primaryScan = await scan(primary, primaryFiles);
  const sum = (m: Map<string, FileRef>): number => [...m.values()].reduce((n, f) => n + f.size, 0);
  const primaryReport = {
    name: primary.name, files: primaryFiles.size, bytes: sum(primaryFiles), missing: [], extra: [], different: [],
    unreadable: primaryScan.unreadable, corrupt: primaryScan.corrupt, consistent: primaryScan.corrupt.length === 0 && primaryScan.unreadable.length === 0,
  };

  const mirrorReports: DestinationReport[] = [];
  for (const m of mirrors) {
    const files = await listing(m.backend);
    const missing: FileRef[] = [];
    const extra: FileRef[] = [];
    const different: FileDifference[] = [];
    for (const [k, f] of primaryFiles) if (!files.has(k)) missing.push(f);
    for (const [k, f] of files) {
      const p = primaryFiles.get(k);
      if (!p) extra.push(f);
      else if (p.size !== f.size) {
        different.push(f.type === 'config'
          ? { ...f, expectedSize: p.size, reason: 'config', message: configMessage(m.name) }
          : { ...f, expectedSize: p.size, reason: 'size', message: `${k} on ${m.name} has ${f.size} bytes, the primary's has ${p.size}` });
      }
    }
    // Only files that exist on both sides with the same size are worth reading; the others are already reported.
    const sizeDiffers = new Set(different.map((d) => keyOf(d.type, d.name)));
    const s = await scan(m, files, (f) => primaryFiles.has(keyOf(f.type, f.name)) && !sizeDiffers.has(keyOf(f.type, f.name)));
    different.push(...s.corrupt);
    const pc = hashes.get(primary.name);
    const mc = hashes.get(m.name);
    if (hash && pc !== undefined && mc !== undefined && pc !== mc) {
      const f = files.get('config/config')!;
      different.push({ ...f, expectedSize: primaryFiles.get('config/config')?.size ?? f.size, reason: 'config', message: configMessage(m.name) });
    }
    const sort = <T extends { type: string; name: string }>(a: T[]): T[] => a.sort((x, y) => keyOf(x.type as FileType, x.name).localeCompare(keyOf(y.type as FileType, y.name)));
    mirrorReports.push({
      name: m.name, files: files.size, bytes: sum(files), missing: sort(missing), extra: sort(extra), different: sort(different), unreadable: s.unreadable,
      consistent: missing.length === 0 && extra.length === 0 && different.length === 0 && s.unreadable.length === 0,
    });
  }
  return {
    primary: primaryReport,
    mirrors: mirrorReports,
    consistent: primaryReport.consistent && mirrorReports.every((r) => r.consistent),
    hashed: hash,
    bytesRead,
    durationMs: Date.now() - t0,
  };
}
