import { defineConfig } from 'tsup';
import { packageBuild } from '../../tsup.base.ts';

// worker.ts is its own entry: the pool starts it by file name next to the bundle. pack-reading is the small entry
// other packages' worker threads import instead of the whole engine.
export default defineConfig(
  packageBuild(
    { index: 'src/index.ts', testing: 'src/testing/index.ts', worker: 'src/worker.ts', 'pack-reading': 'src/pack-reading.ts' },
    { declarations: { index: 'src/index.ts', testing: 'src/testing/index.ts', 'pack-reading': 'src/pack-reading.ts' } },
  ),
);
