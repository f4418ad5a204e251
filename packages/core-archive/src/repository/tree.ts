/**
 * Tree blobs: directory listings as JSON. Encoding is deterministic (same listing, same bytes, same id), and
 * decoding validates every node so that a damaged or hostile tree can never steer a restore outside its target.
 */
import { BackupError } from '../errors.ts';
import type { NodeType, TreeDocument, TreeNode } from '../format.ts';

const NODE_TYPES: ReadonlySet<string> = new Set<NodeType>(['file', 'dir', 'symlink', 'fifo', 'socket', 'chardev', 'blockdev']);
const ID = /^[0-9a-f]{64}$/;
const DECIMAL = /^-?\d+$/;

/** A safe single path component: never empty, `.`/`..`, and never contains `/` or NUL. */
export function isSafeName(name: string): boolean {
  return name.length > 0 && name !== '.' && name !== '..' && !name.includes('/') && !name.includes('\0');
}

function compareNames(a: TreeNode, b: TreeNode): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/** Serialises a listing with a fixed key order so equal listings give equal bytes. */
export function encodeTree(nodes: TreeNode[]): Uint8Array {
  const sorted = [...nodes].sort(compareNames);
  const out = sorted.map((n) => {
    const o: Record<string, unknown> = {
      name: n.name, type: n.type, mode: n.mode, uid: n.uid, gid: n.gid,
      mtimeNs: n.mtimeNs, atimeNs: n.atimeNs, ctimeNs: n.ctimeNs, dev: n.dev, inode: n.inode, nlink: n.nlink,
    };
    if (n.size !== undefined) o.size = n.size;
    if (n.content !== undefined) o.content = n.content;
    if (n.sha256 !== undefined) o.sha256 = n.sha256;
    if (n.subtree !== undefined) o.subtree = n.subtree;
    if (n.linkTarget !== undefined) o.linkTarget = n.linkTarget;
    if (n.rdev !== undefined) o.rdev = n.rdev;
    return o;
  });
  return new TextEncoder().encode(JSON.stringify({ nodes: out }));
}

function fail(what: string, detail: string): never {
  throw new BackupError('CORRUPT', `${what} is damaged: ${detail}. Run \`bam verify\` to see what is affected.`, { subject: what });
}

function int(v: unknown, what: string, field: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) fail(what, `field ${field} is not an integer`);
  return v;
}

function dec(v: unknown, what: string, field: string): string {
  if (typeof v !== 'string' || !DECIMAL.test(v)) fail(what, `field ${field} is not a decimal string`);
  return v;
}

/** Parses and validates a tree blob's plaintext. */
export function decodeTree(bytes: Uint8Array, what: string): TreeDocument {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (e) {
    throw new BackupError('CORRUPT', `${what} is not valid JSON`, { cause: e, subject: what });
  }
  if (typeof value !== 'object' || value === null || !Array.isArray((value as { nodes?: unknown }).nodes)) {
    fail(what, 'it has no node list');
  }
  const seen = new Set<string>();
  const nodes = (value as { nodes: unknown[] }).nodes.map((raw, i): TreeNode => {
    if (typeof raw !== 'object' || raw === null) fail(what, `node ${i} is not an object`);
    const r = raw as Record<string, unknown>;
    if (typeof r.name !== 'string' || !isSafeName(r.name)) fail(what, `node ${i} has an unsafe name ${JSON.stringify(r.name)}`);
    if (seen.has(r.name)) fail(what, `name ${JSON.stringify(r.name)} appears twice`);
    seen.add(r.name);
    if (typeof r.type !== 'string' || !NODE_TYPES.has(r.type)) fail(what, `node ${JSON.stringify(r.name)} has unknown type`);
    const node: TreeNode = {
      name: r.name,
      type: r.type as NodeType,
      mode: int(r.mode, what, 'mode') & 0o7777,
      uid: int(r.uid, what, 'uid'),
      gid: int(r.gid, what, 'gid'),
      mtimeNs: dec(r.mtimeNs, what, 'mtimeNs'),
      atimeNs: dec(r.atimeNs, what, 'atimeNs'),
      ctimeNs: dec(r.ctimeNs, what, 'ctimeNs'),
      dev: dec(r.dev, what, 'dev'),
      inode: dec(r.inode, what, 'inode'),
      nlink: int(r.nlink, what, 'nlink'),
    };
    if (node.type === 'file') {
      const size = int(r.size, what, 'size');
      if (size < 0) fail(what, `file ${JSON.stringify(node.name)} has a negative size`);
      if (!Array.isArray(r.content) || !r.content.every((c) => typeof c === 'string' && ID.test(c))) {
        fail(what, `file ${JSON.stringify(node.name)} has an invalid content list`);
      }
      if (typeof r.sha256 !== 'string' || !ID.test(r.sha256)) fail(what, `file ${JSON.stringify(node.name)} has no sha256`);
      node.size = size;
      node.content = r.content as string[];
      node.sha256 = r.sha256;
    } else if (node.type === 'dir') {
      if (typeof r.subtree !== 'string' || !ID.test(r.subtree)) fail(what, `directory ${JSON.stringify(node.name)} has no subtree`);
      node.subtree = r.subtree;
    } else if (node.type === 'symlink') {
      if (typeof r.linkTarget !== 'string' || r.linkTarget.includes('\0')) fail(what, `symlink ${JSON.stringify(node.name)} has no target`);
      node.linkTarget = r.linkTarget;
    } else if (node.type === 'chardev' || node.type === 'blockdev') {
      node.rdev = int(r.rdev, what, 'rdev');
    }
    return node;
  });
  return { nodes };
}
