// The whole workspace's tests as one vitest run: every package and app is a project with its own config.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    projects: ['packages/*', 'apps/*', 'tools/*'],
  },
});
