/**
 * Where backup-manager keeps its state: the home folder (~/.backup-manager, or BACKUP_MANAGER_HOME) and the
 * files in it. Everything takes the environment and home directory as arguments so tests never touch the real ones.
 */
import { homedir as osHomedir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';

export const HOME_ENV_VAR = 'BACKUP_MANAGER_HOME';

/** True for the path forms config.json accepts: absolute, `~` or `~/…`. */
export function isAbsoluteOrTilde(p: string): boolean {
  return p === '~' || p.startsWith('~/') || isAbsolute(p);
}

/** Replaces a leading `~` or `~/` with the home directory; other paths are returned unchanged. */
export function expandTilde(p: string, homedir: string = osHomedir()): string {
  if (p === '~') return homedir;
  if (p.startsWith('~/')) return join(homedir, p.slice(2));
  return p;
}

/**
 * The state folder: BACKUP_MANAGER_HOME when set and not empty (with `~` expanded and made absolute against the
 * working directory), otherwise `~/.backup-manager`.
 */
export function resolveHome(env: NodeJS.ProcessEnv = process.env, homedir: string = osHomedir()): string {
  const override = env[HOME_ENV_VAR]?.trim();
  if (override !== undefined && override !== '') return resolve(expandTilde(override, homedir));
  return join(homedir, '.backup-manager');
}

export interface StatePaths {
  readonly home: string;
  readonly config: string;
  /** The default local repository. */
  readonly backups: string;
  readonly backupLog: string;
  readonly alertsLog: string;
  readonly metricsLog: string;
  readonly password: string;
  readonly verifyHistory: string;
  /** Local copies of repositories' indexes (see core-archive's IndexCache): safe to delete at any time. */
  readonly cache: string;
}

/** The files and folders inside a state folder returned by resolveHome. */
export function statePaths(home: string): StatePaths {
  return {
    home,
    config: join(home, 'config.json'),
    backups: join(home, 'backups'),
    backupLog: join(home, 'backup.log'),
    alertsLog: join(home, 'alerts.log'),
    metricsLog: join(home, 'storage-metrics.log'),
    password: join(home, 'password'),
    verifyHistory: join(home, 'verify-history.jsonl'),
    cache: join(home, 'cache'),
  };
}
