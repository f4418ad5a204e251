/**
 * Small byte helpers shared by the crypto, pack and index modules. Everything this package returns is a plain
 * Uint8Array that owns its memory: node:crypto and node:zlib hand back Buffers that may be slices of a shared pool,
 * and Buffer#slice makes a view where Uint8Array#slice makes a copy, a difference that has bitten callers before.
 */

/** Returns `b` as a plain Uint8Array, copying only when `b` is a view into a larger (possibly pooled) allocation. */
export function ownedBytes(b: Uint8Array): Uint8Array {
  if (b.byteOffset === 0 && b.byteLength === b.buffer.byteLength && !(b.buffer instanceof SharedArrayBuffer)) {
    return new Uint8Array(b.buffer, 0, b.byteLength);
  }
  const copy = new Uint8Array(b.byteLength);
  copy.set(b);
  return copy;
}

/** Concatenates byte arrays into one new plain Uint8Array. */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  let total = 0;
  for (const p of parts) total += p.byteLength;
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

/** True when both arrays hold the same bytes (not constant-time; never use it to compare secrets or tags). */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}

const utf8Encoder = new TextEncoder();
const strictUtf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export function utf8(text: string): Uint8Array {
  return utf8Encoder.encode(text);
}

/** Decodes UTF-8, throwing a TypeError on malformed input (callers turn that into CORRUPT). */
export function strictUtf8Decode(bytes: Uint8Array): string {
  return strictUtf8Decoder.decode(bytes);
}

/**
 * Frees the memory behind `bytes` now, by detaching its ArrayBuffer, instead of whenever V8 next collects garbage:
 * V8 lets tens of megabytes of dead buffers pile up per thread before it does (their size is invisible to its young
 * generation), and the malloc heaps they lived in stay that large. Only for memory that nothing else uses: every
 * view of the buffer reads as empty afterwards. A view of part of a buffer is released only when the caller knows
 * the whole buffer is its own (`ownsBuffer`). Node's shared Buffer pool cannot be detached: its slices are left to
 * the collector.
 */
export function releaseBytes(bytes: Uint8Array, ownsBuffer = false): void {
  const buffer = bytes.buffer as ArrayBuffer & { transfer?: (length: number) => ArrayBuffer; readonly detached?: boolean };
  if (!(buffer instanceof ArrayBuffer) || buffer.byteLength === 0 || buffer.detached === true) return;
  // A part of a pool-sized buffer is most likely a pool slice: skip it without paying for the refusal below.
  if (bytes.byteLength !== buffer.byteLength && (!ownsBuffer || buffer.byteLength === Buffer.poolSize)) return;
  try {
    buffer.transfer?.(0);
  } catch {
    // Not detachable (Node's pool, or memory Node keeps for itself): the collector frees it as before.
  }
}
