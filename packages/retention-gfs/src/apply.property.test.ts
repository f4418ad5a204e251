/**
 * Properties of applyPolicy over generated snapshot lists, policies and zones: determinism (also under reordering),
 * monotone counts, idempotence, every rule's own picks kept, a partition of the input, the safety rules, and
 * agreement of the count rules with a reference model written from restic's documentation rather than its loop.
 */

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { applyPolicy } from './apply.ts';
import { COUNT_RULES, WITHIN_BUCKET_RULES, type CountRule, type RetentionPolicy } from './policy.ts';
import type { ApplyOptions, GroupByField, PolicyResult, RetentionSnapshot, RuleName } from './types.ts';

const NOW = Date.UTC(2024, 5, 15, 12);
const ZONES = ['UTC', 'Europe/Berlin', 'America/New_York', 'Asia/Kolkata', 'Australia/Lord_Howe', 'Pacific/Chatham'];
const DURATIONS = ['1h', '6h', '1d', '3d', '7d', '1m', '1m14d', '1y', '2y5m7d3h'];
const TAG_LISTS = ['x', 'x,y', 'y', ''];

// Times on a 7-minute grid: either spread over about two and a half years, or crowded into the two days around
// NOW, where equal times (ties), several snapshots per hour and snapshots in the future are common.
const timeArb = fc
  .oneof(
    { arbitrary: fc.integer({ min: -190_000, max: 400 }), weight: 3 },
    { arbitrary: fc.integer({ min: -120, max: 30 }), weight: 2 },
  )
  .map((step) => new Date(NOW + step * 7 * 60_000).toISOString());

const snapshotsArb = fc
  .uniqueArray(
    fc.record({
      id: fc.stringMatching(/^[a-f0-9]{4}$/),
      time: timeArb,
      hostname: fc.constantFrom('alpha', 'beta'),
      paths: fc.constantFrom(['/home'], ['/srv', '/etc'], ['/etc', '/srv']),
      tags: fc.subarray(['keep', 'x', 'y']),
    }),
    { selector: (s) => s.id, maxLength: 40, size: 'medium' },
  )
  .map((list): RetentionSnapshot[] => list);

const countArb = fc.oneof(fc.constant(-1), fc.integer({ min: 0, max: 6 }));

const policyArb: fc.Arbitrary<RetentionPolicy> = fc
  .record(
    {
      last: countArb,
      hourly: countArb,
      daily: countArb,
      weekly: countArb,
      monthly: countArb,
      yearly: countArb,
      within: fc.constantFrom(...DURATIONS),
      withinHourly: fc.constantFrom(...DURATIONS),
      withinDaily: fc.constantFrom(...DURATIONS),
      withinWeekly: fc.constantFrom(...DURATIONS),
      withinMonthly: fc.constantFrom(...DURATIONS),
      withinYearly: fc.constantFrom(...DURATIONS),
      tags: fc.subarray(TAG_LISTS, { minLength: 1 }),
    },
    { requiredKeys: [] },
  )
  .map((p): RetentionPolicy => p);

// A policy with a single rule: removes the most, so it is the hardest test for the safety rules.
const singleRulePolicyArb: fc.Arbitrary<RetentionPolicy> = policyArb
  .filter((p) => Object.keys(p).length > 0)
  .chain((p) => fc.constantFrom(...Object.entries(p)).map(([k, v]): RetentionPolicy => ({ [k]: v })));

const anyPolicyArb = fc.oneof(policyArb, singleRulePolicyArb);

const optionsArb: fc.Arbitrary<ApplyOptions> = fc.record({
  now: fc.constant(new Date(NOW)),
  timeZone: fc.constantFrom(...ZONES),
  groupBy: fc.subarray<GroupByField>(['host', 'paths', 'tags']),
});

const ids = (list: readonly { id: string }[]): string[] => list.map((s) => s.id).sort();
const keptIds = (r: PolicyResult<RetentionSnapshot>): string[] => ids(r.kept.map((k) => k.snapshot));

const RUNS = { numRuns: 150 };

describe('applyPolicy properties', () => {
  it('is deterministic and does not depend on the input order', () => {
    fc.assert(
      fc.property(snapshotsArb, anyPolicyArb, optionsArb, fc.infiniteStream(fc.nat()), (list, policy, options, ks) => {
        const a = applyPolicy(list, policy, options);
        expect(applyPolicy(list, policy, options)).toEqual(a);
        const shuffled = list
          .map((s) => ({ s, k: ks.next().value as number }))
          .sort((x, y) => x.k - y.k)
          .map((x) => x.s);
        expect(applyPolicy(shuffled, policy, options)).toEqual(a);
      }),
      RUNS,
    );
  });

  it('partitions the input into kept and removed, every kept snapshot with a reason, and groups alike', () => {
    fc.assert(
      fc.property(snapshotsArb, anyPolicyArb, optionsArb, (list, policy, options) => {
        const r = applyPolicy(list, policy, options);
        const kept = keptIds(r);
        const removed = ids(r.removed);
        expect(new Set([...kept, ...removed]).size).toBe(kept.length + removed.length);
        expect([...kept, ...removed].sort()).toEqual(ids(list));
        for (const k of r.kept) {
          expect(k.reasons.length).toBeGreaterThan(0);
          expect(k.matches.length).toBeGreaterThan(0);
        }
        expect(ids(r.groups.flatMap((g) => g.kept.map((k) => k.snapshot)))).toEqual(kept);
        expect(ids(r.groups.flatMap((g) => g.removed))).toEqual(removed);
      }),
      RUNS,
    );
  });

  it('never removes a snapshot tagged keep or dated in the future, and removes nothing under an empty policy', () => {
    fc.assert(
      fc.property(snapshotsArb, anyPolicyArb, optionsArb, (list, policy, options) => {
        const r = applyPolicy(list, policy, options);
        for (const s of r.removed) {
          expect(s.tags).not.toContain('keep');
          expect(Date.parse(s.time as string)).toBeLessThanOrEqual(NOW);
        }
        const empty = applyPolicy(list, {}, options);
        expect(empty.removed).toEqual([]);
        expect(empty.emptyPolicy).toBe(true);
      }),
      RUNS,
    );
  });

  it('removes nothing when applied to its own kept set', () => {
    fc.assert(
      fc.property(snapshotsArb, anyPolicyArb, optionsArb, (list, policy, options) => {
        const kept = applyPolicy(list, policy, options).kept.map((k) => k.snapshot);
        expect(applyPolicy(kept, policy, options).removed).toEqual([]);
      }),
      RUNS,
    );
  });

  it('never removes, when a count is raised, a snapshot that the lower count kept', () => {
    const raise = (from: number, by: number): number => (from === -1 ? -1 : by === 0 ? -1 : from + by);
    fc.assert(
      fc.property(
        snapshotsArb,
        policyArb,
        optionsArb,
        fc.constantFrom(...COUNT_RULES),
        fc.integer({ min: 0, max: 5 }),
        (list, policy, options, rule, by) => {
          const low = applyPolicy(list, policy, options);
          const higher: RetentionPolicy = { ...policy, [rule]: raise(policy[rule] ?? 0, by) };
          const high = new Set(keptIds(applyPolicy(list, higher, options)));
          for (const id of keptIds(low)) expect(high.has(id)).toBe(true);
        },
      ),
      RUNS,
    );
  });

  it("keeps every rule's own picks (rules are ORed)", () => {
    fc.assert(
      fc.property(snapshotsArb, anyPolicyArb, optionsArb, (list, policy, options) => {
        const all = new Set(keptIds(applyPolicy(list, policy, options)));
        for (const [rule, value] of Object.entries(policy)) {
          const alone = applyPolicy(list, { [rule]: value }, options);
          for (const k of alone.kept) {
            if (k.matches.includes(rule as RuleName)) expect(all.has(k.snapshot.id)).toBe(true);
          }
        }
      }),
      RUNS,
    );
  });

  it('agrees with a reference model of the count rules (first n buckets; the oldest while the count lasts)', () => {
    // restic's documentation: "for the last n <units> which have one or more snapshots, keep only the most recent
    // one", plus (>= 0.17) "if there are not enough snapshots ... the oldest snapshot is kept additionally".
    // Written over runs of equal buckets instead of restic's single pass.
    const unitOf: Record<CountRule, ((d: Date) => string) | null> = {
      last: null,
      hourly: (d) => d.toISOString().slice(0, 13),
      daily: (d) => d.toISOString().slice(0, 10),
      weekly: (d) => {
        const day = (d.getUTCDay() + 6) % 7;
        const thursday = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + 3 - day));
        const jan1 = Date.UTC(thursday.getUTCFullYear(), 0, 1);
        return `${thursday.getUTCFullYear()}-W${Math.floor((thursday.getTime() - jan1) / 604_800_000) + 1}`;
      },
      monthly: (d) => d.toISOString().slice(0, 7),
      yearly: (d) => d.toISOString().slice(0, 4),
    };
    fc.assert(
      fc.property(snapshotsArb, fc.constantFrom(...COUNT_RULES), countArb, (list, rule, count) => {
        fc.pre(count !== 0);
        const sorted = [...list].sort(
          (a, b) => Date.parse(b.time as string) - Date.parse(a.time as string) || (a.id < b.id ? -1 : 1),
        );
        const key = unitOf[rule];
        const keys = sorted.map((s, i) => (key === null ? `#${i}` : key(new Date(s.time as string))));
        const runStarts = sorted.filter((_, i) => i === 0 || keys[i] !== keys[i - 1]).map((s) => s.id);
        const limit = count === -1 ? runStarts.length : count;
        const expected = new Set(runStarts.slice(0, limit));
        const oldest = sorted.at(-1);
        if (oldest !== undefined && (count === -1 || runStarts.length < count)) expected.add(oldest.id);
        const r = applyPolicy(list, { [rule]: count }, { now: new Date(NOW), timeZone: 'UTC', groupBy: [] });
        const byRule = r.kept.filter((k) => k.matches.includes(rule)).map((k) => k.snapshot.id);
        expect(byRule.sort()).toEqual([...expected].sort());
      }),
      { numRuns: 300 },
    );
  });

  it('keeps at least the newest snapshot of every group unless the policy is tags only', () => {
    fc.assert(
      fc.property(snapshotsArb, anyPolicyArb, optionsArb, (list, policy, options) => {
        fc.pre(Object.keys(policy).some((k) => k !== 'tags'));
        for (const g of applyPolicy(list, policy, options).groups) expect(g.kept.length).toBeGreaterThan(0);
      }),
      RUNS,
    );
  });

  it('accepts every within-bucket rule with every duration', () => {
    for (const rule of WITHIN_BUCKET_RULES) {
      for (const d of DURATIONS) expect(() => applyPolicy([], { [rule]: d }, { now: new Date(NOW) })).not.toThrow();
    }
  });
});
