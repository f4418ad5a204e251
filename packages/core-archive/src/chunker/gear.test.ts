import { describe, expect, it } from 'vitest';
import { isBackupError } from '../errors.ts';
import { gearTable } from './gear.ts';

describe('gearTable', () => {
  it('matches values computed with an independent HMAC-SHA256 (Python hmac)', () => {
    // struct.unpack('>I', hmac.new(secret, bytes([i]), hashlib.sha256).digest()[:4])[0]
    const counting = gearTable(Uint8Array.from({ length: 32 }, (_, i) => i));
    expect(counting).toBeInstanceOf(Uint32Array);
    expect(counting.length).toBe(256);
    expect([counting[0], counting[1], counting[2], counting[3], counting[255]]).toEqual([
      0xe711546e, 0x9b4c8120, 0x4304c22c, 0x2a24d008, 0x1510fc6d,
    ]);
    const zero = gearTable(new Uint8Array(32));
    expect([zero[0], zero[1], zero[255]]).toEqual([0x6620b31f, 0x3d7afb66, 0x4985f875]);
  });

  it('depends on the secret', () => {
    const a = gearTable(new Uint8Array(32));
    const b = gearTable(new Uint8Array(32).fill(1));
    expect(a.filter((v, i) => v === b[i]).length).toBeLessThan(3);
  });

  it('rejects a secret that is not 32 bytes', () => {
    for (const n of [0, 16, 31, 33]) {
      expect(() => gearTable(new Uint8Array(n))).toThrow(expect.toSatisfy((e) => isBackupError(e, 'INVALID_ARGUMENT')));
    }
  });
});
