/**
 * A compact map from blob id to a small state number, for prune's "which blobs are used" pass. It holds one entry
 * per blob that some snapshot references, so it must stay small for millions of blobs: ids live as eight uint32
 * words in one typed array, the states in a Uint8Array, and an open-addressing table maps an id to its entry.
 * About 33 bytes per entry plus 8–16 bytes of table (and up to 50% spare capacity after growing), against ~150
 * bytes for a Set<string>.
 */
import { randomBytes } from 'node:crypto';
import { BackupError } from '../errors.ts';

const ID_WORDS = 8;

function parseIdWords(id: string, out: Uint32Array, at: number): boolean {
  if (id.length !== 64) return false;
  for (let w = 0; w < ID_WORDS; w++) {
    let word = 0;
    for (let j = 0; j < 8; j++) {
      const c = id.charCodeAt(w * 8 + j);
      let d: number;
      if (c >= 48 && c <= 57) d = c - 48;
      else if (c >= 97 && c <= 102) d = c - 87;
      else return false;
      word = (word << 4) | d;
    }
    out[at + w] = word >>> 0;
  }
  return true;
}

export class BlobStateMap {
  #ids = new Uint32Array(1024 * ID_WORDS);
  #states = new Uint8Array(1024);
  #count = 0;
  #slots = new Int32Array(2048);
  readonly #seed = randomBytes(4).readUInt32LE(0) | 0;
  readonly #scratch = new Uint32Array(ID_WORDS);

  get size(): number {
    return this.#count;
  }

  /** Adds the id with `state` when it is absent; true when it was added. A present id keeps its state. */
  add(id: string, state: number): boolean {
    this.#parse(id);
    if (this.#find(this.#scratch, 0) >= 0) return false;
    this.#reserve(this.#count + 1);
    const e = this.#count++;
    this.#ids.set(this.#scratch, e * ID_WORDS);
    this.#states[e] = state;
    if (this.#count * 2 > this.#slots.length) this.#rehash(this.#slots.length * 2);
    else this.#place(this.#slots, e);
    return true;
  }

  /** The id's state, or -1 when the id is absent. */
  get(id: string): number {
    this.#parse(id);
    const e = this.#find(this.#scratch, 0);
    return e < 0 ? -1 : this.#states[e]!;
  }

  /** Sets the state of a present id; false when the id is absent. */
  set(id: string, state: number): boolean {
    this.#parse(id);
    const e = this.#find(this.#scratch, 0);
    if (e < 0) return false;
    this.#states[e] = state;
    return true;
  }

  /** The ids whose state is `state` (hex), at most `limit` of them. */
  idsWithState(state: number, limit = Number.POSITIVE_INFINITY): string[] {
    const out: string[] = [];
    for (let e = 0; e < this.#count && out.length < limit; e++) {
      if (this.#states[e] !== state) continue;
      let hex = '';
      for (let w = 0; w < ID_WORDS; w++) hex += this.#ids[e * ID_WORDS + w]!.toString(16).padStart(8, '0');
      out.push(hex);
    }
    return out;
  }

  /** How many ids have `state`. */
  countState(state: number): number {
    let n = 0;
    for (let e = 0; e < this.#count; e++) if (this.#states[e] === state) n++;
    return n;
  }

  #parse(id: string): void {
    if (!parseIdWords(id, this.#scratch, 0)) throw new BackupError('INVALID_ARGUMENT', `"${String(id).slice(0, 80)}" is not a blob id`);
  }

  #hash(words: Uint32Array, at: number): number {
    let h = this.#seed;
    for (let w = 0; w < ID_WORDS; w++) {
      h = Math.imul(h ^ words[at + w]!, 0x85ebca6b);
      h ^= h >>> 13;
    }
    h = Math.imul(h ^ (h >>> 16), 0xc2b2ae35);
    return (h ^ (h >>> 16)) >>> 0;
  }

  #find(words: Uint32Array, at: number): number {
    const slots = this.#slots;
    const ids = this.#ids;
    const mask = slots.length - 1;
    let slot = this.#hash(words, at) & mask;
    for (;;) {
      const stored = slots[slot]!;
      if (stored === 0) return -1;
      const base = (stored - 1) * ID_WORDS;
      let equal = true;
      for (let w = 0; w < ID_WORDS; w++) {
        if (ids[base + w] !== words[at + w]) {
          equal = false;
          break;
        }
      }
      if (equal) return stored - 1;
      slot = (slot + 1) & mask;
    }
  }

  #place(slots: Int32Array, e: number): void {
    const mask = slots.length - 1;
    let slot = this.#hash(this.#ids, e * ID_WORDS) & mask;
    while (slots[slot] !== 0) slot = (slot + 1) & mask;
    slots[slot] = e + 1;
  }

  #rehash(size: number): void {
    const slots = new Int32Array(size);
    for (let e = 0; e < this.#count; e++) this.#place(slots, e);
    this.#slots = slots;
  }

  #reserve(needed: number): void {
    const capacity = this.#states.length;
    if (needed <= capacity) return;
    const next = Math.ceil(capacity * 1.5);
    const ids = new Uint32Array(next * ID_WORDS);
    ids.set(this.#ids);
    this.#ids = ids;
    const states = new Uint8Array(next);
    states.set(this.#states);
    this.#states = states;
  }
}
