import { defineConfig } from 'tsup';
import { packageBuild } from '../../tsup.base.ts';

export default defineConfig(packageBuild({ main: 'src/main.ts', index: 'src/index.ts' }, { declarations: { index: 'src/index.ts' } }));
