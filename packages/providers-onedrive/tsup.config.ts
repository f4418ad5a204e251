import { defineConfig } from 'tsup';
import { packageBuild } from '../../tsup.base.ts';

// The core is a peer dependency: never bundled, so there is one copy of its types and error classes.
export default defineConfig(packageBuild({ index: 'src/index.ts' }, { external: ['@backup-manager/core-archive'] }));
