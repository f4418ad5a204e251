/**
 * Everything of this package that needs zod (the schema, parsing with its messages, the JSON Schema, the cron
 * check), in one module that index.ts loads on demand: a command without a config file never pays for zod.
 */
export { ConfigSchema } from './schema.ts';
export { parseConfig, parseConfigText, formatIssues } from './parse.ts';
export { configJsonSchema } from './json-schema.ts';
export { checkCron } from './cron.ts';
