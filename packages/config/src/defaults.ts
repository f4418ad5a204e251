/**
 * The config that a missing config.json means, written out so that reading it needs no zod: most runs have no
 * config file, and zod with the schema costs more than 10 MB of memory in every command. defaults.test.ts checks
 * that this is exactly what the schema makes of `{}`, so the two cannot drift apart.
 */
import type { Config } from './schema.ts';

const DEFAULTS: Config = {
  version: 1,
  sources: [],
  destinations: {
    local: { enabled: true, path: '~/.backup-manager/backups', append_only: false },
    google_drive: { enabled: false, path: 'backup-manager', append_only: false },
    dropbox: { enabled: false, path: '/backup-manager', append_only: false },
    onedrive: { enabled: false, path: 'backup-manager', tenant: 'consumers', append_only: false },
  },
  retention: { daily: 7, weekly: 4, monthly: 12, yearly: 3 },
  alerts: {
    low_space_threshold: 15,
    notify_on_failure: true,
    notify_on_success: false,
    notify_on_verification_failure: true,
    notify_on_low_space: true,
  },
  verify: { schedule: '0 4 * * 0', read_data_subset: '5%', rotation_days: 30 },
  repository: { compression: 'zstd' },
  process: {},
};

/** A config with every default: what a missing config.json means. A new object on every call. */
export function defaultConfig(): Config {
  return structuredClone(DEFAULTS);
}
