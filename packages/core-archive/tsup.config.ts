import { defineConfig } from 'tsup';
import { packageBuild } from '../../tsup.base.ts';

// worker.ts is its own entry: the pool starts it by file name next to the bundle.
export default defineConfig(
  packageBuild(
    { index: 'src/index.ts', testing: 'src/testing/index.ts', worker: 'src/worker.ts' },
    { declarations: { index: 'src/index.ts', testing: 'src/testing/index.ts' } },
  ),
);
