/**
 * The zod schema of ~/.backup-manager/config.json with every default in it, so `{}` is a complete config.
 * Values stay as written (durations and sizes as text, `~` unexpanded) so a parsed config writes back unchanged;
 * consumers convert with parseDuration, parseSize and expandTilde.
 */
import { z } from 'zod';
import { BACKUP_TYPES, COMPRESSIONS, PRIORITIES } from './choices.ts';
import type { CloudDestination } from './choices.ts';
import { checkCron } from './cron.ts';
import { isAbsoluteOrTilde } from './paths.ts';
import { MAX_NICE, checkIoPriority } from './priority.ts';
import { checkDuration, checkSize, parseDuration, parseSize } from './units.ts';

export { BACKUP_TYPES, CLOUD_DESTINATIONS, COMPRESSIONS, PRIORITIES } from './choices.ts';
export type { BackupType, CloudDestination, Compression, Priority } from './choices.ts';

const HOUR = 60 * 60 * 1000;

/** A string field whose value `check` accepts; `check` returns the message for a bad value. */
function checkedString(check: (value: string) => string | undefined) {
  return z.string().superRefine((value, ctx) => {
    const message = check(value);
    if (message !== undefined) ctx.addIssue({ code: 'custom', message, input: value });
  });
}

const nonEmptyString = z.string().min(1, { error: 'must not be empty' });

const localPath = checkedString((value) =>
  isAbsoluteOrTilde(value)
    ? undefined
    : `"${value}" is relative; write an absolute path ("/srv/data") or one starting with ~/ ("~/${value.replace(/^\.\//, '')}")`,
);

const cron = checkedString(checkCron);

function positiveDuration(value: string): string | undefined {
  const problem = checkDuration(value);
  if (problem !== undefined) return problem;
  return parseDuration(value) > 0 ? undefined : `"${value}" is zero; use a positive duration such as "24h"`;
}

const duration = checkedString(positiveDuration);

const keepWithin = checkedString((value) => {
  const problem = positiveDuration(value);
  if (problem !== undefined) return problem;
  // restic's --keep-within reads "m" as months; here it is minutes, so a tiny window is almost surely that mistake.
  return parseDuration(value) >= HOUR
    ? undefined
    : `"${value}" keeps only the last ${value} (m means minutes); for months write days, e.g. "180d"`;
});

const size = checkedString((value) => {
  const problem = checkSize(value);
  if (problem !== undefined) return problem;
  return parseSize(value) > 0 ? undefined : `"${value}" is zero; use a positive size such as "2GiB"`;
});

const SUBSET_HELP = 'write a percentage ("5%"), a part n/t ("1/5" reads the first fifth) or a size ("500MiB")';

const readDataSubset = checkedString((value) => {
  const text = value.trim();
  const percent = /^(\d+(?:\.\d+)?)\s*%$/.exec(text);
  if (percent !== null) {
    const share = Number(percent[1]);
    return share > 0 && share <= 100 ? undefined : `"${value}" must be above 0% and at most 100%; ${SUBSET_HELP}`;
  }
  const part = /^(\d+)\s*\/\s*(\d+)$/.exec(text);
  if (part !== null) {
    const n = Number(part[1]);
    const total = Number(part[2]);
    return n >= 1 && n <= total ? undefined : `"${value}" needs 1 <= n <= t in n/t; ${SUBSET_HELP}`;
  }
  if (!text.includes('%') && !text.includes('/') && checkSize(text) === undefined && parseSize(text) > 0) return undefined;
  return `"${value}" is not a subset; ${SUBSET_HELP}`;
});

const appendOnly = z
  .boolean()
  .default(false)
  .describe('Refuse deletes at this destination (ransomware protection); pruning must then happen elsewhere.');

const SourceSchema = z.strictObject({
  path: localPath.describe('Folder or file to back up: absolute or starting with ~/, e.g. "~/Documents".'),
  priority: z.enum(PRIORITIES).default('medium').describe('Which sources run first when several are due.'),
  schedule: cron.default('0 2 * * *').describe('When to back up: a 5-field cron expression (local time).'),
  rpo: duration
    .default('24h')
    .describe('Recovery point objective: the most recent work you accept to lose, i.e. the oldest the newest backup may be.'),
  rto: duration.default('4h').describe('Recovery time objective: how long a full restore of this source may take.'),
  type: z.enum(BACKUP_TYPES).default('incremental').describe('incremental, full or differential.'),
  exclude: z.array(nonEmptyString).default([]).describe('Glob patterns of paths to leave out (e.g. "**/node_modules").'),
  exclude_if_present: z
    .array(nonEmptyString)
    .default([])
    .describe('Skip a folder when it contains a file with one of these names (e.g. ".nobackup", "CACHEDIR.TAG").'),
  exclude_larger_than: size
    .nullable()
    .default(null)
    .describe('Skip files larger than this size (e.g. "2GiB"); null backs up files of any size.'),
  tags: z.array(nonEmptyString).default([]).describe('Labels added to every snapshot of this source.'),
});

/** JSON Schema for editors: when `enabled` is true, `key` is required (parseConfig enforces it with a message). */
function requiredWhenEnabled(key: string) {
  return { if: { properties: { enabled: { const: true } }, required: ['enabled'] }, then: { required: [key] } };
}

/** Adds the "client id missing" issue for an enabled cloud destination. */
function requireClientId(provider: CloudDestination, key: string, what: string) {
  return (destination: { enabled: boolean } & Record<string, unknown>, ctx: z.RefinementCtx): void => {
    const value = destination[key];
    if (!destination.enabled || (typeof value === 'string' && value !== '')) return;
    ctx.addIssue({
      code: 'custom',
      path: [key],
      input: value,
      message:
        `is required when ${provider} is enabled: add "${key}": "<${what}>" under destinations.${provider}, ` +
        `then run \`bam auth ${provider}\` to authorise it (or set "enabled": false)`,
    });
  };
}

const DestinationsSchema = z.strictObject({
  local: z
    .strictObject({
      enabled: z.boolean().default(true).describe('Back up to a folder on this machine or a mounted disk.'),
      path: localPath.default('~/.backup-manager/backups').describe('The local repository folder.'),
      append_only: appendOnly,
    })
    .prefault({})
    .describe('A repository on a local or mounted disk.'),
  google_drive: z
    .strictObject({
      enabled: z.boolean().default(false).describe('Back up to Google Drive.'),
      path: nonEmptyString.default('backup-manager').describe('Drive folder that holds the repository.'),
      client_id: nonEmptyString.optional().describe('Google OAuth client ID (required when enabled).'),
      client_secret: nonEmptyString.optional().describe('Google OAuth client secret, if your client type has one.'),
      append_only: appendOnly,
    })
    .meta(requiredWhenEnabled('client_id'))
    .superRefine(requireClientId('google_drive', 'client_id', 'your Google OAuth client ID'))
    .prefault({})
    .describe('A repository in Google Drive.'),
  dropbox: z
    .strictObject({
      enabled: z.boolean().default(false).describe('Back up to Dropbox.'),
      path: nonEmptyString
        .regex(/^\//, { error: 'must start with "/", e.g. "/backup-manager"' })
        .default('/backup-manager')
        .describe('Dropbox folder that holds the repository, starting with "/".'),
      app_key: nonEmptyString.optional().describe('Dropbox app key (required when enabled).'),
      app_secret: nonEmptyString.optional().describe('Dropbox app secret, if your app uses one.'),
      append_only: appendOnly,
    })
    .meta(requiredWhenEnabled('app_key'))
    .superRefine(requireClientId('dropbox', 'app_key', 'your Dropbox app key'))
    .prefault({})
    .describe('A repository in Dropbox.'),
  onedrive: z
    .strictObject({
      enabled: z.boolean().default(false).describe('Back up to OneDrive.'),
      path: nonEmptyString.default('backup-manager').describe('OneDrive folder that holds the repository.'),
      client_id: nonEmptyString.optional().describe('Microsoft Entra application (client) ID (required when enabled).'),
      tenant: nonEmptyString
        .default('consumers')
        .describe('Microsoft tenant: "consumers" (personal accounts), "organizations", "common" or a tenant ID.'),
      append_only: appendOnly,
    })
    .meta(requiredWhenEnabled('client_id'))
    .superRefine(requireClientId('onedrive', 'client_id', 'your Microsoft application (client) ID'))
    .prefault({})
    .describe('A repository in OneDrive.'),
});

const keepCount = (fallback: number, period: string) =>
  z.int().min(0).default(fallback).describe(`How many ${period}s to keep a snapshot for (the newest in each ${period}).`);

const RetentionSchema = z
  .strictObject({
    daily: keepCount(7, 'day'),
    weekly: keepCount(4, 'week'),
    monthly: keepCount(12, 'month'),
    yearly: keepCount(3, 'year'),
    keep_last: z.int().min(1).optional().describe('Also keep this many most recent snapshots.'),
    keep_within: keepWithin.optional().describe('Also keep every snapshot newer than this duration (e.g. "30d").'),
    keep_tags: z.array(nonEmptyString).optional().describe('Also keep every snapshot that has one of these tags.'),
  })
  .superRefine((retention, ctx) => {
    const keepsSomething =
      retention.daily + retention.weekly + retention.monthly + retention.yearly > 0 ||
      retention.keep_last !== undefined ||
      retention.keep_within !== undefined ||
      (retention.keep_tags?.length ?? 0) > 0;
    if (!keepsSomething) {
      ctx.addIssue({
        code: 'custom',
        path: ['daily'],
        input: retention.daily,
        message: 'retention would delete every snapshot; keep at least one, e.g. "daily": 7 or "keep_last": 1',
      });
    }
  });

const AlertsSchema = z.strictObject({
  low_space_threshold: z
    .number()
    .min(0)
    .max(100)
    .default(15)
    .describe('Alert when a destination has less than this percentage of its space free.'),
  notify_on_failure: z.boolean().default(true).describe('Alert when a backup fails.'),
  notify_on_success: z.boolean().default(false).describe('Alert when a backup succeeds.'),
  notify_on_verification_failure: z.boolean().default(true).describe('Alert when verification finds a problem.'),
  notify_on_low_space: z.boolean().default(true).describe('Alert when free space drops below low_space_threshold.'),
  webhook_url: z
    .url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL, e.g. "https://hooks.example.com/backup"' })
    .optional()
    .describe('POST a JSON alert to this URL.'),
  email: z
    .string()
    .regex(/^[^\s@]+@[^\s@]+\.[^\s@]+$/, { error: 'must be an email address such as "you@example.com"' })
    .optional()
    .describe('Send alerts to this address.'),
});

const VerifySchema = z.strictObject({
  schedule: cron.default('0 4 * * 0').describe('When to verify: a 5-field cron expression (local time).'),
  read_data_subset: readDataSubset
    .default('5%')
    .describe('How much pack data each verification reads: "5%", "n/t" (e.g. "1/5") or a size ("500MiB").'),
  rotation_days: z
    .int()
    .min(1)
    .default(30)
    .describe('Verification reads a different subset each run so all data is read within this many days.'),
});

const RepositorySchema = z
  .strictObject({
    password_file: localPath
      .optional()
      .describe('File holding the repository password (default: password in the state folder).'),
    password_command: nonEmptyString.optional().describe('Command whose standard output is the repository password.'),
    pack_size: size.optional().describe('Target size of pack files (e.g. "16MiB").'),
    compression: z.enum(COMPRESSIONS).default('zstd').describe('zstd or none.'),
  })
  .superRefine((repository, ctx) => {
    if (repository.password_file !== undefined && repository.password_command !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['password_command'],
        message: 'set either password_file or password_command, not both; remove one',
      });
    }
  });

const ProcessSchema = z.strictObject({
  nice: z
    .int()
    .min(0)
    .max(MAX_NICE)
    .optional()
    .describe('CPU niceness from 0 (normal) to 19 (only otherwise idle CPU); unset keeps the niceness bam was started with.'),
  io_priority: checkedString(checkIoPriority)
    .optional()
    .describe('Linux I/O priority: "idle" or "best-effort" / "best-effort:0" to "best-effort:7" (7 lowest); unset keeps the one bam was started with.'),
});

export const ConfigSchema = z
  .strictObject({
    $schema: z.string().optional().describe('Path or URL of config.schema.json, for editors; ignored otherwise.'),
    version: z
      .literal(1, {
        error: (issue) =>
          issue.code === 'invalid_value' && typeof issue.input === 'number'
            ? `must be 1: this backup-manager reads config version 1 only, got ${issue.input}; upgrade backup-manager if a newer one wrote the file`
            : undefined,
      })
      .default(1)
      .describe('Config format version; always 1.'),
    sources: z.array(SourceSchema).default([]).describe('What to back up, and how often.'),
    destinations: DestinationsSchema.prefault({}).describe('Where backups go; every enabled destination gets a copy.'),
    retention: RetentionSchema.prefault({}).describe('Which snapshots to keep (grandfather-father-son).'),
    alerts: AlertsSchema.prefault({}).describe('When and where to send alerts.'),
    verify: VerifySchema.prefault({}).describe('Scheduled verification of the repositories.'),
    repository: RepositorySchema.prefault({}).describe('Repository password source, pack size and compression.'),
    process: ProcessSchema.prefault({}).describe(
      'How politely the long-running commands (backup, restore, forget, prune, verify, test-recovery, check-consistency, sync) run, e.g. when scheduled; their --nice and --io-priority flags take precedence.',
    ),
  })
  .meta({
    title: 'Backup Automation Manager config',
    description: 'Settings in ~/.backup-manager/config.json (or $BACKUP_MANAGER_HOME/config.json).',
  });

/** A config after parsing: every default filled in. */
export type Config = z.output<typeof ConfigSchema>;
/** A config as written in config.json: everything with a default may be left out. */
export type ConfigInput = z.input<typeof ConfigSchema>;
export type SourceConfig = Config['sources'][number];
export type DestinationsConfig = Config['destinations'];
export type RetentionConfig = Config['retention'];
export type AlertsConfig = Config['alerts'];
export type VerifyConfig = Config['verify'];
export type RepositoryConfig = Config['repository'];
export type ProcessConfig = Config['process'];
