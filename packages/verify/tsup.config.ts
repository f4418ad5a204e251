import { defineConfig } from 'tsup';
import { packageBuild } from '../../tsup.base.ts';

// The worker is its own entry: the pool starts it by file name next to the bundle.
export default defineConfig(packageBuild({ index: 'src/index.ts', 'verify-worker': 'src/verify-worker.ts' }, { declarations: { index: 'src/index.ts' } }));
