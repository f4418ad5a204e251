/**
 * The public shapes of applyPolicy: the snapshot fields it reads, its options, and a result that explains every
 * snapshot it keeps.
 */

/** The fields retention reads from a snapshot; extra fields are carried through untouched. */
export interface RetentionSnapshot {
  /** Unique within the list; also breaks ties between snapshots with the same time (ascending id = newer). */
  id: string;
  /** A Date, or an RFC 3339 string with 'Z' or an offset, e.g. '2026-11-20T14:05:00.123456789+01:00'. */
  time: Date | string;
  hostname: string;
  paths: readonly string[];
  tags: readonly string[];
}

export type GroupByField = 'host' | 'paths' | 'tags';

export interface ApplyOptions {
  /** The current time. Snapshots dated after it are never removed, and keep-within* ignores them for "newest". */
  now: Date;
  /** IANA zone for calendar buckets ('Europe/Berlin', 'UTC'). Default: the local zone. */
  timeZone?: string;
  /** Fields that split snapshots into groups, each evaluated on its own. Default ['host', 'paths']; [] = one group. */
  groupBy?: readonly GroupByField[];
  /**
   * Read the calendar of each time string in the UTC offset written in it, as restic does when it loads snapshot
   * JSON (a '+02:00' time buckets by its own wall clock even when `timeZone` is UTC). Date values, which carry no
   * offset, are still read in `timeZone`. Default false: every time is read in `timeZone`.
   */
  useRecordedOffsets?: boolean;
}

export const RULE_NAMES = [
  'last',
  'hourly',
  'daily',
  'weekly',
  'monthly',
  'yearly',
  'within',
  'withinHourly',
  'withinDaily',
  'withinWeekly',
  'withinMonthly',
  'withinYearly',
  'tags',
  /** the snapshot is tagged `keep` (never removed) */
  'protectedTag',
  /** the snapshot is dated after `now` (never removed) */
  'future',
  /** the policy is empty, so nothing is removed */
  'emptyPolicy',
  /** the policy would remove every snapshot of the group; like restic, this package refuses */
  'wholeGroup',
] as const;

/** Why a snapshot was kept: a policy rule, or one of the safety rules. */
export type RuleName = (typeof RULE_NAMES)[number];

export interface KeptSnapshot<S> {
  snapshot: S;
  /** For people, e.g. 'daily snapshot 2026-11-20', 'last snapshot 1/3', 'within 7d', 'tag keep (protected)'. */
  reasons: string[];
  /** For programs: the rules behind `reasons`, each once, in the same order. */
  matches: RuleName[];
}

export interface GroupKey {
  hostname?: string;
  paths?: string[];
  tags?: string[];
}

export interface GroupResult<S> {
  /** Only the fields the snapshots were grouped by; paths and tags sorted, as restic sorts them. */
  key: GroupKey;
  /** Newest first. */
  kept: KeptSnapshot<S>[];
  /** Newest first. */
  removed: S[];
}

export interface PolicyResult<S> {
  /** Ordered by key. */
  groups: GroupResult<S>[];
  /** All groups together, newest first. */
  kept: KeptSnapshot<S>[];
  /** All groups together, newest first. */
  removed: S[];
  /** True when the policy has no rule at all; then nothing is removed and `notes` says so. */
  emptyPolicy: boolean;
  /** Things a person should know, e.g. 'policy is empty: nothing will be removed'. */
  notes: string[];
}
