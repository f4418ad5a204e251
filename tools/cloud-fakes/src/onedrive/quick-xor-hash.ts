// OneDrive's QuickXorHash (the `file.hashes.quickXorHash` of every driveItem): a 160-bit register into which byte i
// is XORed at bit offset 11·i (mod 160, wrapping around), with the 64-bit little-endian length XORed into the last
// eight bytes; the result is sent base64-encoded.

const WIDTH_BITS = 160;
const WIDTH_BYTES = WIDTH_BITS / 8;
const SHIFT = 11;

/** The base64 QuickXorHash of `content`, as Graph reports it. */
export function quickXorHash(content: Uint8Array): string {
  const register = new Uint8Array(WIDTH_BYTES);
  let bitOffset = 0;
  for (const byte of content) {
    const index = bitOffset >> 3;
    const within = bitOffset & 7;
    register[index] = (register[index] ?? 0) ^ ((byte << within) & 0xff);
    if (within !== 0) {
      const next = (index + 1) % WIDTH_BYTES;
      register[next] = (register[next] ?? 0) ^ (byte >> (8 - within));
    }
    bitOffset = (bitOffset + SHIFT) % WIDTH_BITS;
  }
  const length = new DataView(new ArrayBuffer(8));
  length.setBigUint64(0, BigInt(content.length), true);
  for (let i = 0; i < 8; i += 1) {
    const at = WIDTH_BYTES - 8 + i;
    register[at] = (register[at] ?? 0) ^ length.getUint8(i);
  }
  return Buffer.from(register).toString('base64');
}
