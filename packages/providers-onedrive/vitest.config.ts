import { defineProject } from 'vitest/config';

export default defineProject({
  resolve: { conditions: ['source'] },
  // Workspace packages are linked in node_modules, which vitest hands to Node: without this, Node resolves them
  // to their built dist (stale until rebuilt) instead of their sources.
  ssr: { resolve: { conditions: ['source'], externalConditions: ['source'] } },
  test: { name: 'providers-onedrive', include: ['src/**/*.test.ts', 'test/**/*.test.ts'], testTimeout: 60_000 },
});
