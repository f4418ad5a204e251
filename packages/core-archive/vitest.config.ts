import { defineProject } from 'vitest/config';

export default defineProject({
  resolve: { conditions: ['source'] },
  test: { name: 'core-archive', include: ['src/**/*.test.ts'], testTimeout: 60_000 },
});
