/**
 * The fixed choices of config.json's enumerated fields, apart from the zod schema so that code naming them does not
 * load zod.
 */
export const PRIORITIES = ['high', 'medium', 'low'] as const;
export type Priority = (typeof PRIORITIES)[number];

export const BACKUP_TYPES = ['incremental', 'full', 'differential'] as const;
export type BackupType = (typeof BACKUP_TYPES)[number];

export const COMPRESSIONS = ['zstd', 'none'] as const;
export type Compression = (typeof COMPRESSIONS)[number];

/** The cloud destinations; each name is also the provider name `bam auth <provider>` takes. */
export const CLOUD_DESTINATIONS = ['google_drive', 'dropbox', 'onedrive'] as const;
export type CloudDestination = (typeof CLOUD_DESTINATIONS)[number];
