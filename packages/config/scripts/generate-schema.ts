// Writes packages/config/schema/config.schema.json from the zod schema. Run from the repository root with
// `node packages/config/scripts/generate-schema.ts` after changing src/schema.ts; a test fails until you do.
import { mkdir, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { configJsonSchemaText, SCHEMA_FILE } from '../src/json-schema.ts';

const target = new URL(`../${SCHEMA_FILE}`, import.meta.url);
await mkdir(new URL('.', target), { recursive: true });
await writeFile(target, configJsonSchemaText());
console.log(`wrote ${fileURLToPath(target)}`);
