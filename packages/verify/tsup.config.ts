import { defineConfig } from 'tsup';

export default defineConfig({
  // The worker is its own entry: the pool starts it by file name next to the bundle.
  entry: { index: 'src/index.ts', 'verify-worker': 'src/verify-worker.ts' },
  format: ['esm'],
  target: 'node22',
  platform: 'node',
  dts: { entry: { index: 'src/index.ts' } },
  sourcemap: true,
  clean: true,
  splitting: true,
});
