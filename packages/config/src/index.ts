/**
 * @backup-manager/config: the schema, defaults, validation, loading and writing of config.json, the state folder's
 * paths, and the duration, size, cron and I/O-priority parsers the CLI also uses for flags. Whatever needs zod
 * (the schema, parseConfig, the JSON Schema, checkCron) comes from `await configValidation()`, so that importing
 * this package costs little: most commands never read a config file.
 */
export { PRIORITIES, BACKUP_TYPES, COMPRESSIONS, CLOUD_DESTINATIONS } from './choices.ts';
export type {
  Config,
  ConfigInput,
  SourceConfig,
  DestinationsConfig,
  RetentionConfig,
  AlertsConfig,
  VerifyConfig,
  RepositoryConfig,
  ProcessConfig,
  Priority,
  BackupType,
  Compression,
  CloudDestination,
} from './schema.ts';
export type { ParseResult } from './parse.ts';
export { parseDuration, parseSize } from './units.ts';
export { MAX_NICE, checkIoPriority, checkNice, parseIoPriority } from './priority.ts';
export type { IoPriority } from './priority.ts';
export { resolveHome, expandTilde, statePaths, HOME_ENV_VAR } from './paths.ts';
export type { StatePaths } from './paths.ts';
export { loadConfig, writeConfig, defaultConfig } from './load.ts';
export type { LoadedConfig } from './load.ts';
export { configValidation } from './lazy.ts';
export { ConfigError, InvalidValueError } from './errors.ts';
export type { ConfigIssue, ConfigErrorCode } from './errors.ts';
