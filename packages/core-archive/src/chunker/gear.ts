/**
 * The chunker's gear table (docs/format.md, "Content-defined chunking", step 1): 256 32-bit values derived from the
 * repository's secret, so that chunk boundaries reveal nothing about content to someone without the secret.
 */
import { createHmac } from 'node:crypto';
import { BackupError } from '../errors.ts';

export const CHUNKER_SECRET_BYTES = 32;

export function gearTable(secret: Uint8Array): Uint32Array {
  if (secret.byteLength !== CHUNKER_SECRET_BYTES) {
    throw new BackupError(
      'INVALID_ARGUMENT',
      `the chunker secret is ${CHUNKER_SECRET_BYTES} bytes, got ${secret.byteLength}`,
    );
  }
  const table = new Uint32Array(256);
  const message = new Uint8Array(1);
  for (let i = 0; i < 256; i++) {
    message[0] = i;
    table[i] = createHmac('sha256', secret).update(message).digest().readUInt32BE(0);
  }
  return table;
}
