/**
 * `bam sync`, and the sync that `bam backup` runs after a backup: the repository is copied to every other enabled
 * destination of config.json (the 3-2-1 rule), all at once, by @backup-manager/workflows. A destination that fails
 * never fails the backup: it is reported (stderr, and a JSON line with --json), logged to backup.log (operation
 * `sync`, one line per destination) and caught up by the next run, which compares the listings again.
 */
import { BackupError } from '@backup-manager/core-archive';
import type { Repository } from '@backup-manager/core-archive';
import { runBackupJob, syncDestinations } from '@backup-manager/workflows';
import type { SyncDestination, SyncEvent, SyncReport } from '@backup-manager/workflows';
import { enabledDestinations, openDestination } from '../destinations.ts';
import type { ConfiguredDestination } from '../destinations.ts';
import { EXIT } from '../exit-codes.ts';
import { formatBytes, formatDuration } from '../format.ts';
import { ProgressLine } from '../progress.ts';
import type { Runtime } from '../runtime.ts';

export interface SyncFlags {
  dryRun?: boolean;
}

/** The repository's place among the enabled destinations, and the others it is copied to. */
async function syncTargets(rt: Runtime): Promise<{ location: string; member: boolean; mirrors: ConfiguredDestination[]; clouds: number }> {
  const location = await rt.repoLocation();
  const enabled = enabledDestinations(rt, await rt.config());
  return {
    location,
    member: enabled.some((d) => d.location === location),
    mirrors: enabled.filter((d) => d.location !== location),
    clouds: enabled.filter((d) => d.name !== 'local').length,
  };
}

export async function syncCommand(rt: Runtime, flags: SyncFlags): Promise<number> {
  const { location, member, mirrors } = await syncTargets(rt);
  if (!member) {
    throw new BackupError(
      'INVALID_ARGUMENT',
      `${location} is not one of the enabled destinations in ${rt.paths.config}, so there is nothing to copy it to: enable its destination there, or run \`bam sync\` without --repo`,
    );
  }
  if (mirrors.length === 0) {
    rt.printJson({ type: 'sync-summary', repository: location, dryRun: flags.dryRun === true, destinations: [] });
    rt.note(`nothing to sync: no destination other than ${location} is enabled in ${rt.paths.config}`);
    return EXIT.ok;
  }
  const repo = await rt.openRepository();
  let reports: SyncReport[];
  const progress = new SyncProgress(rt);
  try {
    // A shared lock: prune (exclusive) cannot delete files the sync is about to copy.
    reports = await rt.withLock(repo, false, 'sync', () =>
      syncDestinations(repo.backend, mirrors.map((d) => syncDestination(rt, d, flags.dryRun === true)), {
        dryRun: flags.dryRun === true,
        signal: rt.abort.signal,
        onEvent: (e) => progress.event(e),
      }),
    );
  } finally {
    progress.clear();
    repo.close();
  }
  reportSync(rt, location, mirrors, reports, 'sync');
  if (reports.some((r) => r.outcome === 'interrupted') || rt.abort.signal.aborted) return EXIT.interrupted;
  return reports.every((r) => r.outcome === 'success') ? EXIT.ok : EXIT.error;
}

/**
 * For `bam backup`: runs `backup` (which writes the snapshots), then, when `saved()` says a snapshot was saved and
 * the repository is one of the enabled destinations, syncs it to the other enabled destinations. Sync failures are
 * reported and logged here and never thrown.
 */
export async function backupThenSync(rt: Runtime, repo: Repository, backup: () => Promise<void>, saved: () => boolean): Promise<void> {
  const { location, member, mirrors, clouds } = await syncTargets(rt);
  const progress = new SyncProgress(rt);
  const job = await runBackupJob({
    backup,
    syncWhen: () => saved() && member && !rt.abort.signal.aborted,
    primary: repo.backend,
    destinations: mirrors.map((d) => syncDestination(rt, d, false)),
    sync: { signal: rt.abort.signal, onEvent: (e) => progress.event(e) },
  });
  progress.clear();
  if (job.synced) reportSync(rt, location, mirrors, job.sync, 'backup');
  else if (!member && clouds > 0 && saved()) {
    rt.note(`note: the destinations in ${rt.paths.config} were not synced, because ${location} is not one of them; \`bam sync\` copies the configured repository`);
  }
}

function syncDestination(rt: Runtime, d: ConfiguredDestination, dryRun: boolean): SyncDestination {
  return { name: d.name, appendOnly: d.appendOnly, open: () => openDestination(rt, d, { create: !dryRun }) };
}

/** Text, JSON lines and backup.log lines for the reports, one per destination. */
function reportSync(rt: Runtime, repository: string, mirrors: readonly ConfiguredDestination[], reports: readonly SyncReport[], after: 'backup' | 'sync'): void {
  for (const r of reports) {
    const location = mirrors.find((d) => d.name === r.destination)?.location ?? r.destination;
    rt.printJson({ type: 'sync', location, ...r });
    rt.logOperation({
      operation: r.dryRun ? 'sync (dry run)' : 'sync',
      repository,
      destination: location,
      outcome: r.outcome,
      durationMs: r.durationMs,
      counts: {
        filesUploaded: r.uploaded.files,
        bytesUploaded: r.uploaded.bytes,
        filesDeleted: r.deleted.files,
        filesKept: r.plan?.keep.files ?? 0,
        filesUnchanged: r.plan?.unchanged.files ?? 0,
      },
      ...(r.error === undefined ? {} : { errorCode: r.error.code }),
    });
    const where = `${r.destination} (${location})`;
    if (r.error !== undefined) {
      const done = r.uploaded.files > 0 ? ` after uploading ${r.uploaded.files} file(s)` : '';
      const safe = after === 'backup' ? `the backup itself is saved in ${repository}; ` : '';
      const next = r.error.side === 'primary' ? 'fix the repository first' : 'the next backup or `bam sync` catches up';
      const text = `${r.outcome === 'interrupted' ? 'interrupted' : after === 'backup' ? 'warning' : 'error'}: sync to ${where} ${r.outcome === 'interrupted' ? 'stopped' : 'failed'}${done}: ${r.error.message}\n  ${safe}${next}\n`;
      // After a backup this is a warning (the backup succeeded); for `bam sync` it is the command's failure.
      if (after === 'backup') rt.note(text);
      else rt.streams.stderr.write(text);
      continue;
    }
    const plan = r.plan;
    if (r.dryRun && plan !== undefined) {
      rt.print(
        `would sync to ${where}: upload ${plan.upload.files} file(s) (${formatBytes(plan.upload.bytes)}), remove ${plan.delete.files} file(s)` +
          `${plan.keep.files > 0 ? `, keep ${plan.keep.files} removed from the repository (append-only)` : ''}; ${plan.unchanged.files} already there`,
      );
      continue;
    }
    rt.print(
      `synced to ${where}: ${r.uploaded.files} file(s) (${formatBytes(r.uploaded.bytes)}) uploaded, ${r.deleted.files} removed` +
        `${plan !== undefined && plan.keep.files > 0 ? `, ${plan.keep.files} kept (append-only)` : ''}, ${plan?.unchanged.files ?? 0} already there, in ${formatDuration(r.durationMs)}`,
    );
  }
  rt.printJson({ type: 'sync-summary', repository, dryRun: reports.some((r) => r.dryRun), destinations: reports.map((r) => ({ destination: r.destination, outcome: r.outcome })) });
}

/** One progress line for all destinations: the files and bytes uploaded so far, summed. */
class SyncProgress {
  private readonly line: ProgressLine;
  private readonly byDestination = new Map<string, { files: number; bytes: number; totalFiles: number; totalBytes: number }>();

  constructor(rt: Runtime) {
    this.line = new ProgressLine(rt);
  }

  event(e: SyncEvent): void {
    if (e.type === 'plan') this.byDestination.set(e.destination, { files: 0, bytes: 0, totalFiles: e.plan.upload.files, totalBytes: e.plan.upload.bytes });
    if (e.type !== 'uploaded') return;
    this.byDestination.set(e.destination, { files: e.done.files, bytes: e.done.bytes, totalFiles: e.total.files, totalBytes: e.total.bytes });
    let files = 0;
    let bytes = 0;
    let totalFiles = 0;
    let totalBytes = 0;
    for (const d of this.byDestination.values()) {
      files += d.files;
      bytes += d.bytes;
      totalFiles += d.totalFiles;
      totalBytes += d.totalBytes;
    }
    const ms = this.line.elapsed();
    this.line.update(
      () => `[${formatDuration(ms)}] sync to ${this.byDestination.size} destination(s): ${files}/${totalFiles} files  ${formatBytes(bytes)} / ${formatBytes(totalBytes)}`,
      () => ({ phase: 'sync', filesDone: files, filesTotal: totalFiles, bytesDone: bytes, bytesTotal: totalBytes }),
    );
  }

  clear(): void {
    this.line.clear();
  }
}
