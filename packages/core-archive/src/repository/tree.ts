/**
 * Tree blobs: directory listings as JSON. Encoding is deterministic (same listing, same bytes, same id), and
 * decoding validates every node so that a damaged or hostile tree can never steer a restore outside its target.
 */
import { BackupError } from '../errors.ts';
import type { NodeType, TreeDocument, TreeNode } from '../format.ts';
import { isId } from '../crypto/hash.ts';

const NODE_TYPES: ReadonlySet<string> = new Set<NodeType>(['file', 'dir', 'symlink', 'fifo', 'socket', 'chardev', 'blockdev']);
const DECIMAL = /^-?\d+$/;

/** A safe single path component: never empty, `.`/`..`, and never contains `/` or NUL. */
export function isSafeName(name: string): boolean {
  return name.length > 0 && name !== '.' && name !== '..' && !name.includes('/') && !name.includes('\0');
}

function compareNames(a: TreeNode, b: TreeNode): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/** A node with exactly the format's fields, in the format's order. */
function canonicalNode(n: TreeNode): Record<string, unknown> {
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
}

const utf8Encoder = new TextEncoder();
/**
 * Larger listings are written this many nodes at a time: the text of the whole listing and a copy of every node
 * at once (tens of megabytes for a directory of tens of thousands of files) would outlive the young generation.
 */
const ENCODE_PIECE_NODES = 128;

/** Serialises a listing with a fixed key order so equal listings give equal bytes. */
export function encodeTree(nodes: TreeNode[]): Uint8Array {
  const sorted = [...nodes].sort(compareNames);
  if (sorted.length <= ENCODE_PIECE_NODES) return utf8Encoder.encode(JSON.stringify({ nodes: sorted.map(canonicalNode) }));
  // The same bytes as above: JSON.stringify writes an array as its elements joined by commas.
  const parts: Uint8Array[] = [utf8Encoder.encode('{"nodes":[')];
  let length = parts[0]!.byteLength + 2;
  for (let i = 0; i < sorted.length; i += ENCODE_PIECE_NODES) {
    const list = JSON.stringify(sorted.slice(i, i + ENCODE_PIECE_NODES).map(canonicalNode));
    const part = utf8Encoder.encode(i === 0 ? list.slice(1, -1) : `,${list.slice(1, -1)}`);
    parts.push(part);
    length += part.byteLength;
  }
  const out = new Uint8Array(length);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.byteLength;
  }
  out.set(utf8Encoder.encode(']}'), at);
  return out;
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

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** A content list: an array of ids. Written as a loop: it runs for every file of every tree a backup compares with. */
function isIdList(v: unknown): v is string[] {
  if (!Array.isArray(v)) return false;
  for (let i = 0; i < v.length; i++) {
    const c: unknown = v[i];
    if (!isId(c)) return false;
  }
  return true;
}

const NODES_START = Buffer.from('{"nodes":[{"name":');
const NODES_END = Buffer.from('}]}');
const NODE_BOUNDARY = Buffer.from('},{"name":');
/**
 * Listings whose text is larger than this are parsed a piece at a time. V8 places everything JSON.parse makes of a
 * text of 100 KiB or more straight into the old generation, where it stays, garbage, until the next full collection:
 * a backup comparing with its parent decodes its whole tree, and that garbage was a good part of its peak memory.
 */
export const TREE_PIECE_BYTES = 16 * 1024;

/**
 * The node list of a tree written the way encodeTree writes it (`{"nodes":[{"name":…},…]}`), parsed in pieces of
 * about TREE_PIECE_BYTES cut between nodes, each piece's nodes yielded before the next is parsed; undefined when
 * the text is small or not in that form. Exact: the cuts fall on commas, so when every piece parses as a list of
 * values, the whole text is valid JSON and its node list is the pieces' values in order; a piece that does not
 * parse throws. (A cut can only fall between two nodes of the list: a bare `{"` cannot occur inside a JSON string.)
 */
function nodePieces(bytes: Uint8Array): Iterable<unknown[]> | undefined {
  if (bytes.byteLength < 2 * TREE_PIECE_BYTES) return undefined;
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (text.compare(NODES_START, 0, NODES_START.length, 0, NODES_START.length) !== 0) return undefined;
  if (text.compare(NODES_END, 0, NODES_END.length, text.length - NODES_END.length) !== 0) return undefined;
  return (function* pieces(): Generator<unknown[]> {
    // From the first node's `{` to the `}` of the last (the cuts fall on ASCII, so every piece is whole UTF-8).
    const last = text.length - 2;
    for (let start = '{"nodes":['.length; start < last; ) {
      const cut = text.indexOf(NODE_BOUNDARY, start + TREE_PIECE_BYTES);
      const end = cut < 0 ? last : cut + 1;
      yield JSON.parse(`[${utf8.decode(text.subarray(start, end))}]`) as unknown[];
      start = end + 1;
    }
  })();
}

/** Parses and validates a tree blob's plaintext. */
export function decodeTree(bytes: Uint8Array, what: string): TreeDocument {
  const pieces = nodePieces(bytes);
  if (pieces !== undefined) {
    try {
      return validTree(pieces, what);
    } catch {
      // Damaged: parsed as one text below, it fails exactly as it always did (bad JSON first, then bad nodes).
    }
  }
  let value: unknown;
  try {
    value = JSON.parse(utf8.decode(bytes));
  } catch (e) {
    throw new BackupError('CORRUPT', `${what} is not valid JSON`, { cause: e, subject: what });
  }
  if (typeof value !== 'object' || value === null || !Array.isArray((value as { nodes?: unknown }).nodes)) {
    fail(what, 'it has no node list');
  }
  return validTree([(value as { nodes: unknown[] }).nodes], what);
}

/** The nodes (given in pieces), checked one by one and copied field by field. */
function validTree(pieces: Iterable<unknown[]>, what: string): TreeDocument {
  const nodes: TreeNode[] = [];
  // Names are unique: checked by their order when they are sorted, as every tree this program writes is, and with
  // a set only when they are not.
  let seen: Set<string> | undefined;
  let last: string | undefined;
  let i = -1;
  for (const raws of pieces) {
    for (const raw of raws) {
      i++;
      if (typeof raw !== 'object' || raw === null) fail(what, `node ${i} is not an object`);
      const r = raw as Record<string, unknown>;
      const name = r.name;
      if (typeof name !== 'string' || !isSafeName(name)) fail(what, `node ${i} has an unsafe name ${JSON.stringify(name)}`);
      if (seen === undefined && last !== undefined && !(last < name)) seen = new Set(nodes.map((n) => n.name));
      if (seen !== undefined) {
        if (seen.has(name)) fail(what, `name ${JSON.stringify(name)} appears twice`);
        seen.add(name);
      }
      last = name;
      const type = r.type;
      if (typeof type !== 'string' || !NODE_TYPES.has(type)) fail(what, `node ${JSON.stringify(name)} has unknown type`);
      const node: TreeNode = {
        name,
        type: type as NodeType,
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
      if (type === 'file') {
        const size = int(r.size, what, 'size');
        if (size < 0) fail(what, `file ${JSON.stringify(name)} has a negative size`);
        if (!isIdList(r.content)) fail(what, `file ${JSON.stringify(name)} has an invalid content list`);
        if (!isId(r.sha256)) fail(what, `file ${JSON.stringify(name)} has no sha256`);
        node.size = size;
        node.content = r.content;
        node.sha256 = r.sha256;
      } else if (type === 'dir') {
        if (!isId(r.subtree)) fail(what, `directory ${JSON.stringify(name)} has no subtree`);
        node.subtree = r.subtree;
      } else if (type === 'symlink') {
        if (typeof r.linkTarget !== 'string' || r.linkTarget.includes('\0')) fail(what, `symlink ${JSON.stringify(name)} has no target`);
        node.linkTarget = r.linkTarget;
      } else if (type === 'chardev' || type === 'blockdev') {
        node.rdev = int(r.rdev, what, 'rdev');
      }
      nodes.push(node);
    }
  }
  return { nodes };
}
