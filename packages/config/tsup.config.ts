import { defineConfig } from 'tsup';
import { packageBuild } from '../../tsup.base.ts';

// Split: the zod part (src/validation.ts) is imported on demand and must stay in a chunk of its own.
export default defineConfig({ ...packageBuild({ index: 'src/index.ts' }), splitting: true });
