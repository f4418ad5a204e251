/**
 * `bam prune`: removes the data no snapshot uses. It plans first (read-only: which packs to delete, which to
 * repack), shows the plan, and acts only on confirmation, holding an exclusive lock throughout so that no backup
 * runs meanwhile. The library's step order keeps the repository valid if the process is killed at any moment.
 */
import { DEFAULT_MAX_UNUSED, assertDeletable, executePrune, isBackupError, planPrune } from '@backup-manager/core-archive';
import type { PrunePlan } from '@backup-manager/core-archive';
import { EXIT } from '../exit-codes.ts';
import type { Runtime } from '../runtime.ts';
import { parseMaxUnused } from './retention-policy.ts';
import { confirm, prunePlanJson, prunePlanText, pruneProgress, pruneResultText } from './retention-plan.ts';

export interface PruneFlags {
  dryRun?: boolean;
  maxUnused?: string;
  yes?: boolean;
}

export async function pruneCommand(rt: Runtime, flags: PruneFlags): Promise<number> {
  const started = Date.now();
  const maxUnused = parseMaxUnused(flags.maxUnused, DEFAULT_MAX_UNUSED);
  const location = await rt.repoLocation();
  const repo = await rt.openRepository();
  try {
    assertDeletable(repo, 'prune');
    // A dry run only reads: a shared lock keeps a prune from changing things underneath it, and lets backups run.
    return await rt.withLock(repo, flags.dryRun !== true, 'prune', async (lock) => {
      const signal = AbortSignal.any([rt.abort.signal, lock.lost]);
      let plan: PrunePlan;
      const planning = pruneProgress(rt);
      try {
        plan = await planPrune(repo, { maxUnused, signal, onEvent: planning.onEvent });
      } finally {
        planning.line.clear();
      }
      rt.printJson({ type: 'prune-plan', ...prunePlanJson(plan), dryRun: flags.dryRun === true });
      rt.print(prunePlanText(plan));
      if (flags.dryRun) {
        rt.print(`dry run: nothing was changed (planning took ${(plan.durationMs / 1000).toFixed(1)} s)`);
        return EXIT.ok;
      }
      if (plan.empty) {
        rt.printJson({ type: 'prune', bytesFreed: 0, durationMs: Date.now() - started });
        return EXIT.ok;
      }
      if (!(await confirm(rt, flags.yes === true, 'Prune as shown?', 'prune'))) {
        rt.note('not confirmed: nothing was changed');
        return EXIT.error;
      }
      const { onEvent, line } = pruneProgress(rt);
      try {
        const result = await executePrune(repo, plan, { signal, onEvent });
        line.clear();
        const durationMs = Date.now() - started;
        rt.logOperation({ operation: 'prune', repository: location, outcome: 'success', durationMs, counts: { bytesFreed: result.bytesFreed, packsDeleted: result.packsDeleted, packsRepacked: result.packsRepacked } });
        rt.printJson({ type: 'prune', ...result, planMs: plan.durationMs, totalMs: durationMs });
        rt.print(pruneResultText(result) + `; ${(durationMs / 1000).toFixed(1)} s in all`);
        return EXIT.ok;
      } catch (e) {
        line.clear();
        rt.logOperation({ operation: 'prune', repository: location, outcome: rt.abort.signal.aborted ? 'interrupted' : 'failure', durationMs: Date.now() - started, ...(isBackupError(e) ? { errorCode: e.code } : {}) });
        throw e;
      }
    });
  } finally {
    repo.close();
  }
}
