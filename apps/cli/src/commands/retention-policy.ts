/**
 * The policy `bam forget` applies: restic-style --keep-* flags when any is given, otherwise the config's
 * `retention` section, translated into @backup-manager/retention-gfs's RetentionPolicy. Also the snapshot filters
 * (--host, --tag, --path), --group-by and --max-unused, which `forget` and `prune` share.
 */
import path from 'node:path';
import { parseDuration } from '@backup-manager/config';
import type { RetentionConfig } from '@backup-manager/config';
import { BackupError } from '@backup-manager/core-archive';
import type { SnapshotDocument } from '@backup-manager/core-archive';
import { describePolicy, isRetentionPolicyError, parseRetentionDuration } from '@backup-manager/retention-gfs';
import type { GroupByField, RetentionPolicy } from '@backup-manager/retention-gfs';

export interface PolicyFlags {
  keepLast?: string;
  keepHourly?: string;
  keepDaily?: string;
  keepWeekly?: string;
  keepMonthly?: string;
  keepYearly?: string;
  keepWithin?: string;
  keepWithinHourly?: string;
  keepWithinDaily?: string;
  keepWithinWeekly?: string;
  keepWithinMonthly?: string;
  keepWithinYearly?: string;
  keepTag?: string[];
}

const COUNT_FLAGS = [
  ['keepLast', 'last', '--keep-last'],
  ['keepHourly', 'hourly', '--keep-hourly'],
  ['keepDaily', 'daily', '--keep-daily'],
  ['keepWeekly', 'weekly', '--keep-weekly'],
  ['keepMonthly', 'monthly', '--keep-monthly'],
  ['keepYearly', 'yearly', '--keep-yearly'],
] as const;

const DURATION_FLAGS = [
  ['keepWithin', 'within', '--keep-within'],
  ['keepWithinHourly', 'withinHourly', '--keep-within-hourly'],
  ['keepWithinDaily', 'withinDaily', '--keep-within-daily'],
  ['keepWithinWeekly', 'withinWeekly', '--keep-within-weekly'],
  ['keepWithinMonthly', 'withinMonthly', '--keep-within-monthly'],
  ['keepWithinYearly', 'withinYearly', '--keep-within-yearly'],
] as const;

export interface ChosenPolicy {
  policy: RetentionPolicy;
  /** the --keep-* flags, the config's retention, or snapshot ids named on the command line */
  source: 'flags' | 'config' | 'ids';
  /** one line for people, e.g. "keep 7 daily, 4 weekly" */
  description: string;
}

/** Turns a RetentionPolicyError (bad input) into the CLI's usage error; everything else passes through. */
export function asUsageError(e: unknown): unknown {
  return isRetentionPolicyError(e) ? new BackupError('INVALID_ARGUMENT', e.message, { cause: e }) : e;
}

function parseCount(value: string, flag: string): number {
  const n = Number(value.trim());
  if (!/^-?\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < -1) {
    throw new BackupError('INVALID_ARGUMENT', `${flag} needs a whole number of snapshots (0 or more, or -1 for all), not ${JSON.stringify(value)}`);
  }
  return n;
}

/** The policy from --keep-* flags, or undefined when none is given. */
export function policyFromFlags(flags: PolicyFlags): RetentionPolicy | undefined {
  const policy: { -readonly [K in keyof RetentionPolicy]: RetentionPolicy[K] } = {};
  let any = false;
  for (const [flag, field, name] of COUNT_FLAGS) {
    const v = flags[flag];
    if (v === undefined) continue;
    any = true;
    policy[field] = parseCount(v, name);
  }
  for (const [flag, field, name] of DURATION_FLAGS) {
    const v = flags[flag];
    if (v === undefined) continue;
    any = true;
    try {
      parseRetentionDuration(v, name);
    } catch (e) {
      throw asUsageError(e);
    }
    policy[field] = v;
  }
  if (flags.keepTag !== undefined && flags.keepTag.length > 0) {
    any = true;
    policy.tags = flags.keepTag;
  }
  return any ? policy : undefined;
}

/**
 * The config's retention as a policy. keep_within is written in the config's duration units (m = minutes,
 * w = weeks, y = 365 days); retention-gfs reads restic's (m = months), so it is converted to days and hours,
 * rounded up to a whole hour so that the window never shrinks.
 */
export function policyFromConfig(r: RetentionConfig): RetentionPolicy {
  const policy: { -readonly [K in keyof RetentionPolicy]: RetentionPolicy[K] } = {
    daily: r.daily,
    weekly: r.weekly,
    monthly: r.monthly,
    yearly: r.yearly,
  };
  if (r.keep_last !== undefined) policy.last = r.keep_last;
  if (r.keep_within !== undefined) {
    const hours = Math.ceil(parseDuration(r.keep_within) / 3_600_000);
    const days = Math.floor(hours / 24);
    policy.within = `${days > 0 ? `${days}d` : ''}${hours % 24 > 0 || days === 0 ? `${hours % 24}h` : ''}`;
  }
  if (r.keep_tags !== undefined && r.keep_tags.length > 0) policy.tags = r.keep_tags;
  return policy;
}

export function choosePolicy(flags: PolicyFlags, retention: () => Promise<RetentionConfig>): Promise<ChosenPolicy> {
  return (async () => {
    const fromFlags = policyFromFlags(flags);
    const policy = fromFlags ?? policyFromConfig(await retention());
    let description: string;
    try {
      description = describePolicy(policy);
    } catch (e) {
      throw asUsageError(e);
    }
    return { policy, source: fromFlags ? 'flags' : 'config', description };
  })();
}

export function parseGroupBy(value: string | undefined): GroupByField[] | undefined {
  if (value === undefined) return undefined;
  const fields = value.split(',').map((f) => f.trim()).filter((f) => f !== '');
  for (const f of fields) {
    if (f !== 'host' && f !== 'paths' && f !== 'tags') {
      throw new BackupError('INVALID_ARGUMENT', `--group-by takes a comma-separated list of host, paths and tags (or '' for one group), not ${JSON.stringify(f)}`);
    }
  }
  return fields as GroupByField[];
}

/** --max-unused: "5%", "5", "0", "100%" or "unlimited"; the fraction 0..1. */
export function parseMaxUnused(value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const v = value.trim().toLowerCase();
  if (v === 'unlimited') return 1;
  const m = /^(\d+(?:\.\d+)?)\s*%?$/.exec(v);
  const pct = m ? Number(m[1]) : Number.NaN;
  if (!(pct >= 0 && pct <= 100)) {
    throw new BackupError('INVALID_ARGUMENT', `--max-unused takes a percentage from 0% to 100% (or "unlimited"), e.g. 5%, not ${JSON.stringify(value)}`);
  }
  return pct / 100;
}

export interface SnapshotFilter {
  host?: string;
  tag?: string[];
  path?: string[];
}

/**
 * restic's filters: --host must equal; each --tag value is a comma-separated list the snapshot must all have, and
 * any one --tag value suffices; every --path must be among the snapshot's paths.
 */
export function snapshotMatches(s: SnapshotDocument, f: SnapshotFilter): boolean {
  if (f.host !== undefined && s.hostname !== f.host) return false;
  if (f.tag !== undefined && f.tag.length > 0) {
    const lists = f.tag.map((t) => t.split(',').map((x) => x.trim()).filter((x) => x !== ''));
    if (!lists.some((list) => list.every((t) => s.tags.includes(t)))) return false;
  }
  if (f.path !== undefined && f.path.length > 0) {
    if (!f.path.every((p) => s.paths.includes(path.resolve(p)))) return false;
  }
  return true;
}
