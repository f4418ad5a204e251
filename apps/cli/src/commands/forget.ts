/**
 * `bam forget`: applies a GFS retention policy (restic's --keep-* flags, or the config's `retention`) to the
 * snapshots, shows the plan with the reason for every kept snapshot, and after confirmation deletes the snapshot
 * files of the others; with --prune it then removes the data only they used.
 */
import { BackupError, DEFAULT_MAX_UNUSED, assertDeletable, compareTime, executePrune, isBackupError, planPrune, shortId } from '@backup-manager/core-archive';
import type { PrunePlan, PruneResult, Repository, SnapshotDocument } from '@backup-manager/core-archive';
import { applyPolicy } from '@backup-manager/retention-gfs';
import type { GroupKey, PolicyResult } from '@backup-manager/retention-gfs';
import { EXIT } from '../exit-codes.ts';
import { formatTime, table } from '../format.ts';
import type { Runtime } from '../runtime.ts';
import { pruneCommand } from './prune.ts';
import type { PruneFlags } from './prune.ts';
import { asUsageError, choosePolicy, parseGroupBy, parseMaxUnused, policyFromFlags, snapshotMatches } from './retention-policy.ts';
import type { ChosenPolicy, PolicyFlags } from './retention-policy.ts';
import { confirm, prunePlanJson, prunePlanText, pruneProgress, pruneResultText } from './retention-plan.ts';

export interface ForgetFlags extends PolicyFlags {
  host?: string;
  tag?: string[];
  path?: string[];
  groupBy?: string;
  dryRun?: boolean;
  prune?: boolean;
  maxUnused?: string;
  yes?: boolean;
}

interface Candidate {
  id: string;
  time: string;
  hostname: string;
  paths: string[];
  tags: string[];
  snapshot: SnapshotDocument;
}

function describeKey(key: GroupKey): string {
  const parts: string[] = [];
  if (key.hostname !== undefined) parts.push(`host ${key.hostname}`);
  if (key.paths !== undefined) parts.push(`paths [${key.paths.join(', ')}]`);
  if (key.tags !== undefined) parts.push(`tags [${key.tags.join(', ')}]`);
  return parts.length > 0 ? parts.join(', ') : 'all snapshots';
}

function row(c: Candidate, reasons?: string): string[] {
  const cells = [shortId(c.id), formatTime(c.time), c.hostname, c.tags.join(',')];
  if (reasons !== undefined) cells.push(reasons);
  return [...cells, c.paths.join(', ')];
}

function planText(result: PolicyResult<Candidate>): string {
  const out: string[] = [];
  for (const g of result.groups) {
    out.push(`snapshots of ${describeKey(g.key)}:`);
    if (g.kept.length > 0) {
      out.push(`keep ${g.kept.length} snapshot(s):`);
      out.push(table(['ID', 'Time', 'Host', 'Tags', 'Reasons', 'Paths'], g.kept.map((k) => row(k.snapshot, k.reasons.join('; ')))));
    }
    if (g.removed.length > 0) {
      out.push(`remove ${g.removed.length} snapshot(s):`);
      out.push(table(['ID', 'Time', 'Host', 'Tags', 'Paths'], g.removed.map((c) => row(c))));
    }
    out.push('');
  }
  return out.join('\n');
}

function planJson(result: PolicyResult<Candidate>): unknown[] {
  const brief = (c: Candidate): Record<string, unknown> => ({ id: c.id, short_id: shortId(c.id), time: c.time, hostname: c.hostname, paths: c.paths, tags: c.tags });
  return result.groups.map((g) => ({
    key: g.key,
    keep: g.kept.map((k) => ({ ...brief(k.snapshot), reasons: k.reasons, matches: k.matches })),
    remove: g.removed.map(brief),
  }));
}

/** The snapshots named on the command line, as a plan that removes exactly them. */
async function namedPlan(repo: Repository, refs: string[], flags: ForgetFlags): Promise<{ result: PolicyResult<Candidate>; chosen: ChosenPolicy }> {
  if (policyFromFlags(flags) !== undefined || flags.tag !== undefined || flags.path !== undefined || flags.groupBy !== undefined) {
    throw new BackupError('INVALID_ARGUMENT', 'give either snapshot ids to remove, or a policy (--keep-* flags, --tag, --path, --group-by), not both');
  }
  const byId = new Map<string, Candidate>();
  for (const ref of refs) {
    const { id, snapshot } = await repo.findSnapshot(ref);
    byId.set(id, { id, time: snapshot.time, hostname: snapshot.hostname, paths: snapshot.paths, tags: snapshot.tags, snapshot });
  }
  const removed = [...byId.values()].sort((a, b) => compareTime(b.time, a.time));
  return {
    result: { groups: [{ key: {}, kept: [], removed }], kept: [], removed, emptyPolicy: false, notes: [] },
    chosen: { policy: {}, source: 'ids', description: `remove the ${removed.length} snapshot(s) named on the command line` },
  };
}

export async function forgetCommand(rt: Runtime, flags: ForgetFlags, refs: string[] = []): Promise<number> {
  const started = Date.now();
  const groupBy = parseGroupBy(flags.groupBy);
  const maxUnused = parseMaxUnused(flags.maxUnused, DEFAULT_MAX_UNUSED);
  const policy = refs.length > 0 ? undefined : await choosePolicy(flags, async () => (await rt.config()).retention);
  const location = await rt.repoLocation();
  const repo = await rt.openRepository();
  try {
    // An append-only repository refuses before anything is planned, dry run included: no plan pretends it could act.
    assertDeletable(repo, flags.prune ? 'forget --prune' : 'forget');
    return await rt.withLock(repo, flags.dryRun !== true, 'forget', async (lock) => {
      const signal = AbortSignal.any([rt.abort.signal, lock.lost]);
      let result: PolicyResult<Candidate>;
      let chosen: ChosenPolicy;
      let considered: number;
      if (policy === undefined) {
        ({ result, chosen } = await namedPlan(repo, refs, flags));
        considered = result.removed.length;
      } else {
        chosen = policy;
        // Strict: a snapshot that cannot be read fails the command, since its references would be unknown.
        const candidates: Candidate[] = (await repo.listSnapshots())
          .filter((e) => snapshotMatches(e.snapshot, flags))
          .map((e) => ({ id: e.id, time: e.snapshot.time, hostname: e.snapshot.hostname, paths: e.snapshot.paths, tags: e.snapshot.tags, snapshot: e.snapshot }));
        considered = candidates.length;
        try {
          result = applyPolicy(candidates, chosen.policy, { now: rt.runContext().now(), ...(groupBy !== undefined ? { groupBy } : {}) });
        } catch (e) {
          throw asUsageError(e);
        }
      }
      const removeIds = result.removed.map((c) => c.id);

      let prunePlan: PrunePlan | undefined;
      if (flags.prune) {
        const { onEvent, line } = pruneProgress(rt);
        try {
          prunePlan = await planPrune(repo, { maxUnused, ignoreSnapshots: new Set(removeIds), signal, onEvent });
        } finally {
          line.clear();
        }
      }

      const source = chosen.source === 'flags' ? 'the --keep-* flags' : chosen.source === 'config' ? `the config's retention (${rt.paths.config})` : 'the command line';
      rt.printJson({
        type: 'forget-plan',
        policy: chosen.policy,
        policySource: chosen.source,
        description: chosen.description,
        considered,
        groups: planJson(result),
        keep: result.kept.length,
        remove: removeIds.length,
        notes: result.notes,
        prune: prunePlan ? prunePlanJson(prunePlan) : null,
        dryRun: flags.dryRun === true,
      });
      rt.print(chosen.source === 'ids' ? chosen.description : `policy from ${source}: ${chosen.description}`);
      if (considered === 0) rt.print('no snapshot matches the host, tag and path filters');
      else rt.print(planText(result));
      for (const n of result.notes) rt.print(`note: ${n}`);
      rt.print(`${result.kept.length} snapshot(s) kept, ${removeIds.length} to remove`);
      if (prunePlan) rt.print(prunePlanText(prunePlan));

      const nothing = removeIds.length === 0 && (prunePlan === undefined || prunePlan.empty);
      if (flags.dryRun) {
        rt.print('dry run: nothing was changed');
        return EXIT.ok;
      }
      if (nothing) {
        rt.print(removeIds.length === 0 && result.emptyPolicy ? 'the policy is empty: nothing was removed' : 'nothing to remove');
        rt.printJson({ type: 'forget', removed: [], prune: null });
        return EXIT.ok;
      }
      const what = removeIds.length > 0
        ? `remove ${removeIds.length} snapshot(s)${prunePlan && !prunePlan.empty ? ' and prune their data' : ''}`
        : 'prune unused data';
      if (!(await confirm(rt, flags.yes === true, `${what[0]!.toUpperCase()}${what.slice(1)}?`, what))) {
        rt.note('not confirmed: nothing was changed');
        return EXIT.error;
      }

      const removed: string[] = [];
      try {
        for (const id of removeIds) {
          if (signal.aborted) break;
          await repo.backend.remove({ type: 'snapshots', name: id });
          removed.push(id);
        }
      } finally {
        rt.logOperation({ operation: 'forget', repository: location, outcome: removed.length === removeIds.length ? 'success' : 'interrupted', durationMs: Date.now() - started, counts: { removed: removed.length, kept: result.kept.length } });
      }
      if (removed.length < removeIds.length) {
        rt.note(`interrupted after removing ${removed.length} of ${removeIds.length} snapshot(s); the rest are kept`);
        return EXIT.interrupted;
      }
      rt.print(`removed ${removed.length} snapshot(s)`);

      let pruned: PruneResult | undefined;
      if (prunePlan) {
        const pruneStarted = Date.now();
        const { onEvent, line } = pruneProgress(rt);
        try {
          pruned = await executePrune(repo, prunePlan, { signal, onEvent });
        } catch (e) {
          rt.logOperation({ operation: 'prune', repository: location, outcome: rt.abort.signal.aborted ? 'interrupted' : 'failure', durationMs: Date.now() - pruneStarted, ...(isBackupError(e) ? { errorCode: e.code } : {}) });
          throw e;
        } finally {
          line.clear();
        }
        rt.logOperation({ operation: 'prune', repository: location, outcome: 'success', durationMs: Date.now() - pruneStarted, counts: { bytesFreed: pruned.bytesFreed, packsDeleted: pruned.packsDeleted, packsRepacked: pruned.packsRepacked } });
        rt.print(pruneResultText(pruned));
      }
      rt.printJson({ type: 'forget', removed, prune: pruned ?? null, durationMs: Date.now() - started });
      if (!pruned && removed.length > 0) rt.note('run `bam prune` (or forget with --prune) to free the space only they used');
      return EXIT.ok;
    });
  } finally {
    repo.close();
  }
}
