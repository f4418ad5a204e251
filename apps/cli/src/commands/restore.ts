/**
 * `bam restore SNAPSHOT[:SUBPATH] --target DIR`: restores content and metadata, checks every file's SHA-256, and
 * refuses to overwrite existing files unless --overwrite.
 */
import fs from 'node:fs';
import path from 'node:path';
import { BackupError, prestartWorkers, resolveSnapshotPath, restore, shortId } from '@backup-manager/core-archive';
import type { Id, Repository, RestoreProblem } from '@backup-manager/core-archive';
import { EXIT } from '../exit-codes.ts';
import { formatBytes, formatDuration, formatRate } from '../format.ts';
import { restoreProgress } from '../progress.ts';
import type { Runtime } from '../runtime.ts';

export interface RestoreFlags {
  target?: string;
  include?: string[];
  exclude?: string[];
  overwrite?: boolean;
}

export function splitSnapshotRef(ref: string): { snapshot: string; subpath: string | undefined } {
  const i = ref.indexOf(':');
  return i < 0 ? { snapshot: ref, subpath: undefined } : { snapshot: ref.slice(0, i), subpath: ref.slice(i + 1) || '/' };
}

export async function restoreCommand(rt: Runtime, ref: string, flags: RestoreFlags): Promise<number> {
  if (!flags.target) throw new BackupError('INVALID_ARGUMENT', 'restore needs --target DIR: the folder to restore into (created if missing)');
  const { snapshot: snapRef, subpath } = splitSnapshotRef(ref);
  const target = fs.statSync(flags.target, { throwIfNoEntry: false });
  if (target && !target.isDirectory()) throw new BackupError('INVALID_ARGUMENT', `--target ${flags.target} exists and is not a folder: give a folder (it is created if missing)`);
  const started = Date.now();
  const location = await rt.repoLocation();
  // The worker threads start now: they load their code while the key is derived and the index loaded.
  prestartWorkers();
  const repo = await rt.openRepository();
  try {
    return await rt.withLock(repo, false, 'restore', async () => {
      await repo.loadIndex({ cache: rt.indexCache });
      const { id, snapshot } = await repo.findSnapshot(snapRef);
      const { onEvent, line } = restoreProgress(rt);
      let result;
      try {
        result = await restore(repo, id, {
          target: flags.target!,
          ...(subpath ? { subpath } : {}),
          ...(flags.include ? { include: flags.include } : {}),
          ...(flags.exclude ? { exclude: flags.exclude } : {}),
          overwrite: flags.overwrite === true,
          signal: rt.abort.signal,
          onEvent,
        });
      } catch (e) {
        const code = e instanceof BackupError ? e.code : 'INTERNAL';
        rt.logOperation({ operation: 'restore', repository: location, snapshot: id, outcome: code === 'INTERRUPTED' ? 'interrupted' : 'failure', durationMs: Date.now() - started, errorCode: code });
        throw e;
      } finally {
        line.clear();
      }
      // A socket cannot be restored (like tar, bam leaves it to the program that listens on it): not a partial restore.
      const skipped = await socketProblems(repo, snapshot.tree, subpath, flags.target!, result.problems);
      const ok = result.problems.every((p) => skipped.has(p));
      rt.logOperation({ operation: 'restore', repository: location, snapshot: id, outcome: ok ? 'success' : 'partial', durationMs: Date.now() - started, counts: { files: result.files, bytes: result.bytes, problems: result.problems.length, mismatches: result.mismatches.length } });
      rt.printJson({ type: 'summary', snapshot: id, target: flags.target, files: result.files, dirs: result.dirs, bytes: result.bytes, durationMs: result.durationMs, problems: result.problems, mismatches: result.mismatches });
      rt.print(`restored snapshot ${shortId(id)} to ${flags.target}: ${result.files} files, ${result.dirs} directories, ${formatBytes(result.bytes)} in ${formatDuration(result.durationMs)} (${formatRate(result.bytes, result.durationMs)})`);
      if (result.mismatches.length > 0) rt.note(`error: ${result.mismatches.length} file(s) did not match their SHA-256 in the snapshot; run \`bam verify\``);
      else if (ok) rt.print('every restored file matches its SHA-256 in the snapshot');
      if (result.mismatches.length > 0) return EXIT.error;
      return ok ? EXIT.ok : EXIT.partial;
    });
  } finally {
    repo.close();
  }
}

/** The problems that only say a socket of the snapshot was not recreated. */
async function socketProblems(repo: Repository, tree: Id, subpath: string | undefined, target: string, problems: RestoreProblem[]): Promise<Set<RestoreProblem>> {
  const out = new Set<RestoreProblem>();
  const candidates = problems.filter((p) => p.code === 'unsupported');
  if (candidates.length === 0) return out;
  // Where the restore put things: the target holds the content of a folder, or a file by its own name.
  const start = await resolveSnapshotPath(repo, tree, subpath ?? '/');
  const base = start.node.type === 'dir' ? start.path : path.posix.dirname(start.path);
  const root = path.resolve(target);
  for (const p of candidates) {
    const rel = path.relative(root, p.path);
    if (rel.startsWith('..') || path.isAbsolute(rel)) continue;
    try {
      const { node } = await resolveSnapshotPath(repo, tree, path.posix.join(base, rel.split(path.sep).join('/')));
      if (node.type === 'socket') out.add(p);
    } catch {
      // Not in the snapshot under that name: a real problem.
    }
  }
  return out;
}
