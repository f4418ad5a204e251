/**
 * The retention policy: its public shape (restic's `forget --keep-*` options), validation with messages that say
 * what to write instead, restic's notion of an empty policy, and a one-line human description.
 */

import { RetentionPolicyError } from './errors.ts';
import {
  formatRetentionDuration,
  isZeroDuration,
  parseRetentionDuration,
  type RetentionDuration,
} from './duration.ts';

export interface RetentionPolicy {
  /** keep-last: the n newest snapshots. -1 keeps all. */
  last?: number;
  /** keep-hourly: the newest snapshot of each of the n newest hours that have snapshots. -1: every hour. */
  hourly?: number;
  daily?: number;
  /** ISO weeks, Monday to Sunday. */
  weekly?: number;
  monthly?: number;
  yearly?: number;
  /** keep-within: every snapshot newer than this duration before the newest snapshot, e.g. '2y5m7d3h'. */
  within?: string;
  /** keep-within-hourly: the newest snapshot of each hour, for hours within this duration of the newest snapshot. */
  withinHourly?: string;
  withinDaily?: string;
  withinWeekly?: string;
  withinMonthly?: string;
  withinYearly?: string;
  /** keep-tag: each entry is a tag list; 'a,b' keeps snapshots that have both a and b. '' keeps untagged ones. */
  tags?: readonly string[];
}

export const COUNT_RULES = ['last', 'hourly', 'daily', 'weekly', 'monthly', 'yearly'] as const;
export type CountRule = (typeof COUNT_RULES)[number];

export const WITHIN_BUCKET_RULES = [
  'withinHourly',
  'withinDaily',
  'withinWeekly',
  'withinMonthly',
  'withinYearly',
] as const;
export type WithinBucketRule = (typeof WITHIN_BUCKET_RULES)[number];

const POLICY_FIELDS: readonly string[] = [...COUNT_RULES, 'within', ...WITHIN_BUCKET_RULES, 'tags'];

/** The flag a restic user would write for each field, used in messages. */
const RESTIC_FLAG: Readonly<Record<string, string>> = {
  last: '--keep-last',
  hourly: '--keep-hourly',
  daily: '--keep-daily',
  weekly: '--keep-weekly',
  monthly: '--keep-monthly',
  yearly: '--keep-yearly',
  within: '--keep-within',
  withinHourly: '--keep-within-hourly',
  withinDaily: '--keep-within-daily',
  withinWeekly: '--keep-within-weekly',
  withinMonthly: '--keep-within-monthly',
  withinYearly: '--keep-within-yearly',
  tags: '--keep-tag',
};

/** A validated policy: counts (0 off, -1 unlimited), durations (null when off) and split tag lists. */
export interface NormalizedPolicy {
  readonly counts: Readonly<Record<CountRule, number>>;
  readonly within: RetentionDuration | null;
  readonly withinBuckets: Readonly<Record<WithinBucketRule, RetentionDuration | null>>;
  readonly tagLists: readonly (readonly string[])[];
}

/** Turns 'keep-daily', 'keep_within_daily', 'keepDaily' into the field name a user probably meant. */
function suggestField(name: string): string | undefined {
  const camel = name
    .replace(/^-+/, '')
    .replace(/^keep[-_]?/i, '')
    .replace(/[-_]+([a-zA-Z])/g, (_, c: string) => c.toUpperCase());
  const candidate = camel.charAt(0).toLowerCase() + camel.slice(1);
  if (candidate === 'tag') return 'tags';
  return POLICY_FIELDS.includes(candidate) ? candidate : undefined;
}

function validateCount(policy: RetentionPolicy, rule: CountRule): number {
  const value: unknown = policy[rule];
  if (value === undefined) return 0;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < -1) {
    const what = rule === 'last' ? 'snapshots' : `${rule} snapshots`;
    throw new RetentionPolicyError(
      `policy.${rule} (restic ${RESTIC_FLAG[rule]}) must be a whole number of ${what} (0 or more), ` +
        `or -1 for unlimited; got ${JSON.stringify(value) ?? String(value)}. ` +
        `Write ${rule}: -1 to keep all of them, or leave ${rule} out to turn the rule off`,
      { field: rule },
    );
  }
  return value;
}

function validateDuration(policy: RetentionPolicy, rule: 'within' | WithinBucketRule): RetentionDuration | null {
  const value: unknown = policy[rule];
  if (value === undefined) return null;
  const d = parseRetentionDuration(value as string, `policy.${rule} (restic ${RESTIC_FLAG[rule]})`);
  return isZeroDuration(d) ? null : d;
}

/** restic's tag-list syntax: 'a,b' is the list [a, b]; white space around each tag is dropped. */
export function splitTagList(entry: string): string[] {
  return entry.split(',').map((t) => t.trim());
}

/** Validates a policy and brings it into the form the algorithm uses. Throws RetentionPolicyError. */
export function normalizePolicy(policy: RetentionPolicy): NormalizedPolicy {
  if (policy === null || typeof policy !== 'object' || Array.isArray(policy)) {
    throw new RetentionPolicyError(
      'policy must be an object such as { daily: 7, weekly: 4, monthly: 12 }; pass {} to remove nothing',
      { field: 'policy' },
    );
  }
  for (const key of Object.keys(policy)) {
    if (!POLICY_FIELDS.includes(key)) {
      const suggestion = suggestField(key);
      throw new RetentionPolicyError(
        `unknown policy field "${key}": ` +
          (suggestion !== undefined ? `write "${suggestion}" instead. ` : '') +
          `The fields are ${POLICY_FIELDS.join(', ')}`,
        { field: key },
      );
    }
  }
  const counts = Object.fromEntries(COUNT_RULES.map((rule) => [rule, validateCount(policy, rule)])) as Record<
    CountRule,
    number
  >;
  const withinBuckets = Object.fromEntries(
    WITHIN_BUCKET_RULES.map((rule) => [rule, validateDuration(policy, rule)]),
  ) as Record<WithinBucketRule, RetentionDuration | null>;
  const tags: unknown = policy.tags;
  let tagLists: string[][] = [];
  if (tags !== undefined) {
    if (!Array.isArray(tags) || !tags.every((t): t is string => typeof t === 'string')) {
      throw new RetentionPolicyError(
        'policy.tags (restic --keep-tag) must be an array of strings; each entry is one tag list, ' +
          "e.g. tags: ['monthly-archive', 'db,prod'] keeps snapshots tagged monthly-archive or tagged both db and prod",
        { field: 'tags' },
      );
    }
    tagLists = tags.map(splitTagList);
  }
  return { counts, within: validateDuration(policy, 'within'), withinBuckets, tagLists };
}

function isEmptyNormalized(p: NormalizedPolicy): boolean {
  return (
    COUNT_RULES.every((r) => p.counts[r] === 0) &&
    p.within === null &&
    WITHIN_BUCKET_RULES.every((r) => p.withinBuckets[r] === null) &&
    p.tagLists.length === 0
  );
}

/**
 * restic's empty policy: every count 0, every duration zero or absent, no tag list. An empty policy removes nothing.
 * Validates the policy first (throws RetentionPolicyError for an invalid one).
 */
export function isEmptyPolicy(policy: RetentionPolicy): boolean {
  return isEmptyNormalized(normalizePolicy(policy));
}

/** Internal variant for callers that already normalised. */
export function isEmptyNormalizedPolicy(p: NormalizedPolicy): boolean {
  return isEmptyNormalized(p);
}

/** restic prints a tag list as [a, b]. */
export function formatTagList(list: readonly string[]): string {
  return `[${list.join(', ')}]`;
}

const COUNT_WORD: Readonly<Record<CountRule, string>> = {
  last: 'latest',
  hourly: 'hourly',
  daily: 'daily',
  weekly: 'weekly',
  monthly: 'monthly',
  yearly: 'yearly',
};

const WITHIN_WORD: Readonly<Record<WithinBucketRule, string>> = {
  withinHourly: 'hourly',
  withinDaily: 'daily',
  withinWeekly: 'weekly',
  withinMonthly: 'monthly',
  withinYearly: 'yearly',
};

/**
 * One line for people, in restic's order: 'keep 7 daily, 4 weekly, 12 monthly, 3 yearly', then the within-bucket
 * rules, tag lists and keep-within. An empty policy reads 'policy is empty: nothing will be removed'.
 */
export function describePolicy(policy: RetentionPolicy): string {
  const p = normalizePolicy(policy);
  if (isEmptyNormalized(p)) return 'policy is empty: nothing will be removed';
  const parts: string[] = [];
  for (const rule of COUNT_RULES) {
    const n = p.counts[rule];
    if (n > 0) parts.push(`${n} ${COUNT_WORD[rule]}`);
    else if (n === -1) parts.push(rule === 'last' ? 'all snapshots' : `all ${COUNT_WORD[rule]}`);
  }
  for (const rule of WITHIN_BUCKET_RULES) {
    const d = p.withinBuckets[rule];
    if (d !== null) parts.push(`${WITHIN_WORD[rule]} snapshots within ${formatRetentionDuration(d)}`);
  }
  if (p.tagLists.length > 0) {
    parts.push(`all snapshots with tags ${p.tagLists.map(formatTagList).join(' or ')}`);
  }
  if (p.within !== null) parts.push(`all snapshots within ${formatRetentionDuration(p.within)} of the newest`);
  return `keep ${parts.join(', ')}`;
}
