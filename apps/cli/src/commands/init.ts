/**
 * `bam init`: creates a repository (a local folder, or a cloud folder with the provider's create(), through the
 * registry in destinations.ts) and, when no password is configured, a strong random one.
 */
import { parseSize } from '@backup-manager/config';
import { BackupError, Repository, isBackupError } from '@backup-manager/core-archive';
import type { Backend } from '@backup-manager/core-archive';
import type { Runtime } from '../runtime.ts';

export interface InitFlags {
  appendOnly?: boolean;
  packSize?: string;
  compression?: string;
}

export async function initCommand(rt: Runtime, flags: InitFlags): Promise<number> {
  const started = Date.now();
  const location = await rt.repoLocation();
  if (flags.compression !== undefined && flags.compression !== 'zstd' && flags.compression !== 'none') {
    throw new BackupError('INVALID_ARGUMENT', `--compression must be zstd or none, not ${flags.compression}`);
  }
  const cfg = (await rt.config()).repository;
  const packSizeText = flags.packSize ?? cfg.pack_size;
  const packSize = packSizeText !== undefined ? parseSize(String(packSizeText)) : undefined;
  // Before anything is written: a password generated for a repository that already exists could not open it, and
  // would then shadow the password that does.
  if (await hasConfig(await rt.backend())) {
    throw new BackupError('REPOSITORY_EXISTS', `a repository already exists at ${location}; use it, or choose another location with --repo`);
  }
  const { password, generatedAt } = await rt.passwordForInit();
  const backend = await rt.backend(true);
  const repo = await Repository.init(backend, password, {
    context: rt.runContext(),
    appendOnly: flags.appendOnly === true,
    compression: (flags.compression as 'zstd' | 'none' | undefined) ?? cfg.compression,
    ...(packSize !== undefined ? { packSize } : {}),
  });
  rt.logOperation({ operation: 'init', repository: location, outcome: 'success', durationMs: Date.now() - started });
  rt.printJson({ type: 'init', id: repo.config.id, repository: location, appendOnly: repo.config.appendOnly, passwordFile: generatedAt ?? null });
  rt.print(`created repository ${repo.config.id.slice(0, 10)} at ${location}`);
  if (generatedAt) {
    rt.note(
      `\nA random password was generated and saved to ${generatedAt} (readable only by you).\n` +
        'KEEP A COPY OF IT SOMEWHERE ELSE (a password manager, or printed): without it the backups cannot be read,\n' +
        'and if this disk dies the copy in that file dies with it.',
    );
  }
  repo.close();
  return 0;
}

async function hasConfig(backend: Backend): Promise<boolean> {
  try {
    await backend.stat({ type: 'config', name: 'config' });
    return true;
  } catch (e) {
    if (isBackupError(e, 'NOT_FOUND')) return false;
    throw e;
  }
}
