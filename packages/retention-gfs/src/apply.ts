/**
 * applyPolicy: restic's `forget` policy as a pure function. Snapshots are grouped (host and paths by default), each
 * group is sorted newest first and walked once, and every rule decides on its own whether it wants the snapshot
 * (rules are ORed). On top of restic's rules sit three safety rules: a snapshot tagged `keep` or dated after `now`
 * is never removed, and a policy that would empty a group removes nothing from it.
 */

import {
  bucketKey,
  bucketLabel,
  compareInstants,
  localTimeZone,
  parseSnapshotTime,
  recordedLocation,
  resolveZone,
  subtractCalendar,
  wallClock,
  ZONE_LOCATION,
  type BucketUnit,
  type Instant,
  type Location,
  type WallClock,
  type Zone,
} from './calendar.ts';
import { formatRetentionDuration, type RetentionDuration } from './duration.ts';
import { RetentionPolicyError } from './errors.ts';
import {
  COUNT_RULES,
  formatTagList,
  isEmptyNormalizedPolicy,
  normalizePolicy,
  WITHIN_BUCKET_RULES,
  type CountRule,
  type NormalizedPolicy,
  type RetentionPolicy,
  type WithinBucketRule,
} from './policy.ts';
import type {
  ApplyOptions,
  GroupByField,
  GroupKey,
  GroupResult,
  KeptSnapshot,
  PolicyResult,
  RetentionSnapshot,
  RuleName,
} from './types.ts';

/** The tag that protects a snapshot from every policy. */
export const PROTECT_TAG = 'keep';
export const EMPTY_POLICY_NOTE = 'policy is empty: nothing will be removed';

const DEFAULT_GROUP_BY: readonly GroupByField[] = ['host', 'paths'];
const GROUP_FIELDS: readonly string[] = ['host', 'paths', 'tags'];

const COUNT_UNIT: Readonly<Record<CountRule, BucketUnit | null>> = {
  last: null,
  hourly: 'hour',
  daily: 'day',
  weekly: 'week',
  monthly: 'month',
  yearly: 'year',
};

const WITHIN_UNIT: Readonly<Record<WithinBucketRule, BucketUnit>> = {
  withinHourly: 'hour',
  withinDaily: 'day',
  withinWeekly: 'week',
  withinMonthly: 'month',
  withinYearly: 'year',
};

const UNIT_WORD: Readonly<Record<BucketUnit, string>> = {
  hour: 'hourly',
  day: 'daily',
  week: 'weekly',
  month: 'monthly',
  year: 'yearly',
};

interface Entry<S> extends Instant {
  readonly snapshot: S;
  readonly id: string;
  readonly location: Location;
  readonly wall: WallClock;
  readonly future: boolean;
  readonly protectedTag: boolean;
  readonly tags: readonly string[];
}

interface Verdict {
  reasons: string[];
  matches: RuleName[];
}

interface Settings {
  readonly now: Instant;
  readonly zone: Zone;
  readonly groupBy: ReadonlySet<GroupByField>;
  readonly useRecordedOffsets: boolean;
}

function readOptions(options: ApplyOptions): Settings {
  if (options === null || typeof options !== 'object') {
    throw new RetentionPolicyError('options must be an object with at least { now: new Date() }', {
      field: 'options',
    });
  }
  const { now } = options;
  if (!(now instanceof Date) || !Number.isFinite(now.getTime())) {
    throw new RetentionPolicyError(
      'options.now must be a valid Date (the current time, e.g. new Date()); retention never reads the clock itself',
      { field: 'now' },
    );
  }
  const zone = resolveZone(options.timeZone ?? localTimeZone());
  const groupBy = options.groupBy ?? DEFAULT_GROUP_BY;
  if (!Array.isArray(groupBy) || !groupBy.every((g) => typeof g === 'string' && GROUP_FIELDS.includes(g))) {
    throw new RetentionPolicyError(
      `options.groupBy must list any of 'host', 'paths' and 'tags' (restic --group-by), e.g. ['host', 'paths']; ` +
        `pass [] to put all snapshots into one group. Got ${JSON.stringify(groupBy)}`,
      { field: 'groupBy' },
    );
  }
  const useRecordedOffsets = options.useRecordedOffsets ?? false;
  if (typeof useRecordedOffsets !== 'boolean') {
    throw new RetentionPolicyError('options.useRecordedOffsets must be true or false', {
      field: 'useRecordedOffsets',
    });
  }
  return { now: { ms: now.getTime(), subMsNanos: 0 }, zone, groupBy: new Set(groupBy), useRecordedOffsets };
}

function isStringArray(value: unknown): value is readonly string[] {
  return Array.isArray(value) && value.every((v) => typeof v === 'string');
}

function readSnapshots<S extends RetentionSnapshot>(snapshots: readonly S[], settings: Settings): Entry<S>[] {
  if (!Array.isArray(snapshots)) {
    throw new RetentionPolicyError('snapshots must be an array of { id, time, hostname, paths, tags }', {
      field: 'snapshots',
    });
  }
  const seen = new Set<string>();
  return snapshots.map((snapshot, index) => {
    const field = `snapshots[${index}]`;
    if (snapshot === null || typeof snapshot !== 'object') {
      throw new RetentionPolicyError(`${field} must be an object with id, time, hostname, paths and tags`, { field });
    }
    const { id, hostname, paths, tags } = snapshot;
    if (typeof id !== 'string' || id === '') {
      throw new RetentionPolicyError(`${field}.id must be a non-empty string (the snapshot ID)`, {
        field: `${field}.id`,
      });
    }
    if (seen.has(id)) {
      throw new RetentionPolicyError(
        `${field}.id "${id}" appears twice: pass each snapshot once (IDs must be unique)`,
        { field: `${field}.id` },
      );
    }
    seen.add(id);
    if (typeof hostname !== 'string') {
      throw new RetentionPolicyError(`${field}.hostname must be a string (use '' when unknown)`, {
        field: `${field}.hostname`,
      });
    }
    if (!isStringArray(paths)) {
      throw new RetentionPolicyError(`${field}.paths must be an array of strings`, { field: `${field}.paths` });
    }
    if (!isStringArray(tags)) {
      throw new RetentionPolicyError(`${field}.tags must be an array of strings (use [] for none)`, {
        field: `${field}.tags`,
      });
    }
    const time = parseSnapshotTime(snapshot.time, `${field}.time (snapshot ${id})`);
    const location = settings.useRecordedOffsets ? recordedLocation(time, settings.zone) : ZONE_LOCATION;
    return {
      snapshot,
      id,
      ms: time.ms,
      subMsNanos: time.subMsNanos,
      location,
      wall: wallClock(time.ms, location, settings.zone),
      future: compareInstants(time, settings.now) > 0,
      protectedTag: tags.includes(PROTECT_TAG),
      tags,
    };
  });
}

/** Newest first; equal times by ascending id, so the result never depends on the input order. */
function newestFirst<S>(a: Entry<S>, b: Entry<S>): number {
  return compareInstants(b, a) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

function groupKeyOf(snapshot: RetentionSnapshot, groupBy: ReadonlySet<GroupByField>): GroupKey {
  const key: GroupKey = {};
  if (groupBy.has('host')) key.hostname = snapshot.hostname;
  if (groupBy.has('paths')) key.paths = [...snapshot.paths].sort();
  if (groupBy.has('tags')) key.tags = [...snapshot.tags].sort();
  return key;
}

function describeGroup(key: GroupKey): string {
  const parts: string[] = [];
  if (key.hostname !== undefined) parts.push(`host ${JSON.stringify(key.hostname)}`);
  if (key.paths !== undefined) parts.push(`paths ${formatTagList(key.paths)}`);
  if (key.tags !== undefined) parts.push(`tags ${formatTagList(key.tags)}`);
  return parts.length === 0 ? 'all snapshots' : parts.join(', ');
}

/** restic's HasTags: the snapshot has every tag of the list; '' in the list matches a snapshot without tags. */
function hasTagList(tags: readonly string[], list: readonly string[]): boolean {
  for (const tag of list) {
    if (tag === '' && tags.length === 0) return true;
    if (!tags.includes(tag)) return false;
  }
  return true;
}

function add(verdict: Verdict, rule: RuleName, reason: string): void {
  verdict.reasons.push(reason);
  if (!verdict.matches.includes(rule)) verdict.matches.push(rule);
}

/**
 * restic's ApplyPolicy on one group, sorted newest first. Returns, per entry, the verdict of the policy rules alone
 * (empty when no rule keeps it).
 */
function evaluateRules<S>(entries: readonly Entry<S>[], policy: NormalizedPolicy, settings: Settings): Verdict[] {
  // "Newest" for keep-within*: the newest snapshot that is not in the future; none at all means every snapshot is
  // within the duration (restic starts from the zero time then).
  const latest = entries.find((e) => compareInstants(e, settings.now) < 0);
  const thresholdOf = (d: RetentionDuration): Instant =>
    latest === undefined
      ? { ms: -Infinity, subMsNanos: 0 }
      : subtractCalendar(latest, latest.location, settings.zone, d.years, d.months, d.days, d.hours);
  const isWithin = (e: Entry<S>, threshold: Instant): boolean => compareInstants(e, threshold) > 0;

  const withinThreshold = policy.within === null ? null : thresholdOf(policy.within);
  const counters = COUNT_RULES.filter((rule) => policy.counts[rule] !== 0).map((rule) => ({
    rule,
    unit: COUNT_UNIT[rule],
    total: policy.counts[rule],
    left: policy.counts[rule],
    taken: 0,
    lastKey: null as number | null,
  }));
  const withinBuckets = WITHIN_BUCKET_RULES.flatMap((rule) => {
    const d = policy.withinBuckets[rule];
    return d === null
      ? []
      : [
          {
            rule,
            unit: WITHIN_UNIT[rule],
            text: formatRetentionDuration(d),
            threshold: thresholdOf(d),
            lastKey: null as number | null,
          },
        ];
  });

  return entries.map((entry, nr) => {
    const verdict: Verdict = { reasons: [], matches: [] };
    const oldest = nr === entries.length - 1;

    for (const list of policy.tagLists) {
      if (hasTagList(entry.tags, list)) add(verdict, 'tags', `has tags ${formatTagList(list)}`);
    }

    if (policy.within !== null && withinThreshold !== null && isWithin(entry, withinThreshold)) {
      add(verdict, 'within', `within ${formatRetentionDuration(policy.within)}`);
    }

    // Count rules: a new bucket (compared with the bucket last kept) takes one from the count. restic >= 0.17 also
    // keeps the oldest snapshot of the group when the count is not used up by then ("oldest daily snapshot").
    for (const c of counters) {
      if (c.left === 0) continue;
      const key = c.unit === null ? nr : bucketKey(c.unit, entry.wall);
      if (key === c.lastKey && !oldest) continue;
      const sameBucket = key === c.lastKey;
      c.lastKey = key;
      if (c.left > 0) c.left -= 1;
      c.taken += 1;
      if (c.unit === null) {
        add(verdict, c.rule, `last snapshot ${c.taken}/${c.total === -1 ? 'unlimited' : c.total}`);
      } else {
        const text = `${UNIT_WORD[c.unit]} snapshot ${bucketLabel(c.unit, entry.wall)}`;
        add(verdict, c.rule, sameBucket ? `oldest ${text}` : text);
      }
    }

    // Within-bucket rules: like the count rules but unlimited, for snapshots newer than the threshold; the oldest
    // snapshot of the group is kept too when it is within the duration.
    for (const w of withinBuckets) {
      if (!isWithin(entry, w.threshold)) continue;
      const key = bucketKey(w.unit, entry.wall);
      if (key === w.lastKey && !oldest) continue;
      const sameBucket = key === w.lastKey;
      w.lastKey = key;
      const text = `${UNIT_WORD[w.unit]} within ${w.text} (${bucketLabel(w.unit, entry.wall)})`;
      add(verdict, w.rule, sameBucket ? `oldest ${text}` : text);
    }
    return verdict;
  });
}

function addProtections<S>(verdict: Verdict, entry: Entry<S>): void {
  if (entry.protectedTag) add(verdict, 'protectedTag', `tag ${PROTECT_TAG} (protected)`);
  if (entry.future) add(verdict, 'future', 'in the future');
}

interface GroupOutcome<S> {
  readonly result: GroupResult<S>;
  readonly keptEntries: Entry<S>[];
  readonly removedEntries: Entry<S>[];
  readonly keptOf: Map<Entry<S>, KeptSnapshot<S>>;
  readonly savedByTag: number;
  readonly savedAsFuture: number;
  readonly refused: boolean;
}

function applyToGroup<S>(
  key: GroupKey,
  entries: Entry<S>[],
  policy: NormalizedPolicy,
  empty: boolean,
  settings: Settings,
): GroupOutcome<S> {
  entries.sort(newestFirst);
  const verdicts: Verdict[] = empty
    ? entries.map(() => ({ reasons: ['policy is empty'], matches: ['emptyPolicy'] }))
    : evaluateRules(entries, policy, settings);
  // restic refuses to delete every snapshot of a group (only a keep-tag-only policy can want that).
  const refused = !empty && entries.length > 0 && verdicts.every((v) => v.reasons.length === 0);
  let savedByTag = 0;
  let savedAsFuture = 0;
  const keptEntries: Entry<S>[] = [];
  const removedEntries: Entry<S>[] = [];
  const keptOf = new Map<Entry<S>, KeptSnapshot<S>>();
  entries.forEach((entry, i) => {
    const verdict = verdicts[i] ?? { reasons: [], matches: [] };
    if (refused) add(verdict, 'wholeGroup', 'the policy would remove every snapshot of the group');
    const byRules = verdict.reasons.length > 0;
    addProtections(verdict, entry);
    if (verdict.reasons.length === 0) {
      removedEntries.push(entry);
      return;
    }
    if (!byRules) {
      if (entry.protectedTag) savedByTag += 1;
      else savedAsFuture += 1;
    }
    keptEntries.push(entry);
    keptOf.set(entry, { snapshot: entry.snapshot, reasons: verdict.reasons, matches: verdict.matches });
  });
  const result: GroupResult<S> = {
    key,
    kept: keptEntries.map((e) => keptOf.get(e) as KeptSnapshot<S>),
    removed: removedEntries.map((e) => e.snapshot),
  };
  return { result, keptEntries, removedEntries, keptOf, savedByTag, savedAsFuture, refused };
}

function plural(n: number, one: string, many: string): string {
  return `${n} ${n === 1 ? one : many}`;
}

/**
 * Applies a restic `forget` policy. Pure: reads nothing but its arguments (the local time zone is the default for
 * `timeZone`) and does not modify them. Throws RetentionPolicyError for an invalid policy, option or snapshot.
 */
export function applyPolicy<S extends RetentionSnapshot>(
  snapshots: readonly S[],
  policy: RetentionPolicy,
  options: ApplyOptions,
): PolicyResult<S> {
  const normalized = normalizePolicy(policy);
  const settings = readOptions(options);
  const entries = readSnapshots(snapshots, settings);
  const empty = isEmptyNormalizedPolicy(normalized);

  const groups = new Map<string, { key: GroupKey; entries: Entry<S>[] }>();
  for (const entry of entries) {
    const key = groupKeyOf(entry.snapshot, settings.groupBy);
    const id = JSON.stringify([key.hostname ?? null, key.paths ?? null, key.tags ?? null]);
    const group = groups.get(id);
    if (group === undefined) groups.set(id, { key, entries: [entry] });
    else group.entries.push(entry);
  }

  const notes: string[] = [];
  if (empty) notes.push(EMPTY_POLICY_NOTE);
  const outcomes = [...groups.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([, g]) => applyToGroup(g.key, g.entries, normalized, empty, settings));

  let savedByTag = 0;
  let savedAsFuture = 0;
  const keptEntries: Entry<S>[] = [];
  const removedEntries: Entry<S>[] = [];
  const keptOf = new Map<Entry<S>, KeptSnapshot<S>>();
  for (const o of outcomes) {
    if (o.refused) {
      notes.push(
        `refusing to delete every snapshot of the group ${describeGroup(o.result.key)}: the policy keeps none ` +
          `of its ${plural(o.keptEntries.length, 'snapshot', 'snapshots')}, so all are kept ` +
          `(check the tags in policy.tags)`,
      );
    }
    savedByTag += o.savedByTag;
    savedAsFuture += o.savedAsFuture;
    keptEntries.push(...o.keptEntries);
    removedEntries.push(...o.removedEntries);
    for (const [e, k] of o.keptOf) keptOf.set(e, k);
  }
  if (savedByTag > 0) {
    notes.push(
      `${plural(savedByTag, 'snapshot is', 'snapshots are')} kept only because tagged "${PROTECT_TAG}" (protected)`,
    );
  }
  const futureCount = entries.filter((e) => e.future).length;
  if (futureCount > 0) {
    notes.push(
      `${plural(futureCount, 'snapshot is', 'snapshots are')} dated after now (${options.now.toISOString()}) and ` +
        `never removed${savedAsFuture > 0 ? ` (${savedAsFuture} only for that reason)` : ''}: ` +
        `check the clocks of the hosts that made them`,
    );
  }
  keptEntries.sort(newestFirst);
  removedEntries.sort(newestFirst);
  return {
    groups: outcomes.map((o) => o.result),
    kept: keptEntries.map((e) => keptOf.get(e) as KeptSnapshot<S>),
    removed: removedEntries.map((e) => e.snapshot),
    emptyPolicy: empty,
    notes,
  };
}
