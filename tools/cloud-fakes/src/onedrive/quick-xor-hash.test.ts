// Checks quickXorHash against published vectors (short inputs, and one longer than the 160-bit register so the
// wrap-around is exercised).

import { describe, expect, it } from 'vitest';
import { quickXorHash } from './quick-xor-hash.ts';

const VECTORS: readonly (readonly [string, string])[] = [
  ['', 'AAAAAAAAAAAAAAAAAAAAAAAAAAA='],
  ['Sg==', 'SgAAAAAAAAAAAAAAAQAAAAAAAAA='],
  ['0pZP', '0rDEEwAAAAAAAAAAAwAAAAAAAAA='],
  ['2fuxhBJXtpWFe8dOfdGeHw==', 'O9tHLAghgSvYohKFyMMxnNCHaHg='],
  [
    'PfxMcUd0vIW6VbHG/uj/Y0W6qEoKmyBD0nYebEKazKaKG+UaDqBEcmQjbfQeVnVLuodMoPp7P7TR1htX5n2VnkHh22xDyoJ8C/ZQKiSNqQfXvh83judf4RVr9exJCud8Uvgip6aVZTaPrJHVjQhMCp/dEnGvqg0oN5OVkM2qqAXvA0teKUDhgNM71sDBVBCGXxNOR2bpbD1iM4dnuT0ey4L+loXEHTL0fqMeUcEi2asgImnlNakwenDzz0x57aBwyq3AspCFGB1ncX4yYCr/OaCcS5OKi/00WH+wNQU3',
    'QX/YEpG0gDsmhEpCdWhsxDzsfVE=',
  ],
];

describe('quickXorHash', () => {
  it.each(VECTORS)('hashes %s to %s', (input, expected) => {
    expect(quickXorHash(Buffer.from(input, 'base64'))).toBe(expected);
  });

  it('depends on every byte and on the length', () => {
    const base = Buffer.alloc(500, 1);
    const changed = Buffer.from(base);
    changed[321] = 2;
    expect(quickXorHash(changed)).not.toBe(quickXorHash(base));
    expect(quickXorHash(Buffer.alloc(501, 0))).not.toBe(quickXorHash(Buffer.alloc(500, 0)));
  });
});
