import { defineProject } from 'vitest/config';

export default defineProject({
  test: { name: 'check-boundaries', include: ['*.test.ts'], testTimeout: 60_000 },
});
