/**
 * The JSON Schema of config.json, generated from the zod schema so editors can complete and check the file.
 * Input mode: keys with defaults are optional. Checks written as code (cron, durations, sizes, "client id when
 * enabled") cannot be expressed in JSON Schema and are only enforced by parseConfig.
 */
import { z } from 'zod';
import { ConfigSchema } from './schema.ts';

/** Where the committed copy lives, relative to the package folder; regenerate with the command below. */
export const SCHEMA_FILE = 'schema/config.schema.json';
export const SCHEMA_REGENERATE_COMMAND = 'node packages/config/scripts/generate-schema.ts';

export function configJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(ConfigSchema, { io: 'input', target: 'draft-2020-12' });
}

/** The exact text of schema/config.schema.json. */
export function configJsonSchemaText(): string {
  return `${JSON.stringify(configJsonSchema(), null, 2)}\n`;
}
