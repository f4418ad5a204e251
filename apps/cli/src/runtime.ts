/**
 * What every command needs from its surroundings: the state folder, the config, which repository and password
 * to use, where output goes (text, JSON or nothing), the operation log, and Ctrl-C handling. Commands get one
 * Runtime and never read process globals themselves, so tests can run them in-process with their own streams.
 */
import { execSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, expandTilde, loadConfig, resolveHome, statePaths } from '@backup-manager/config';
import type { Config, StatePaths } from '@backup-manager/config';
import { BackupError, IndexCache, LocalBackend, Repository, defaultContext, lockRepository } from '@backup-manager/core-archive';
import type { Backend, HeldLock, RunContext } from '@backup-manager/core-archive';
import { firstEnabledCloud, openCloudRepository, parseCloudLocation } from './destinations.ts';

const DEFAULT_LOCAL_PATH = '~/.backup-manager/backups';

export interface GlobalOptions {
  repo?: string;
  passwordFile?: string;
  passwordCommand?: string;
  json?: boolean;
  quiet?: boolean;
  host?: string;
  /** --limit-upload / --limit-download, KiB/s, for cloud repositories and destinations */
  limitUpload?: string;
  limitDownload?: string;
}

export interface Streams {
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  stdin: NodeJS.ReadableStream & { isTTY?: boolean };
}

export interface OperationLogEntry {
  operation: string;
  repository?: string;
  /** `sync`: the destination copied to; `auth`: the provider signed in to */
  destination?: string;
  snapshot?: string;
  outcome: 'success' | 'partial' | 'failure' | 'interrupted';
  counts?: Record<string, number>;
  durationMs: number;
  errorCode?: string;
}

export class Runtime {
  readonly env: NodeJS.ProcessEnv;
  readonly home: string;
  readonly paths: StatePaths;
  readonly streams: Streams;
  readonly options: GlobalOptions;
  readonly abort = new AbortController();
  private configCache: Config | undefined;
  private context: RunContext | undefined;
  /** the repository location, once a command has asked for it (for backup.log) */
  resolvedRepository: string | undefined;
  /** how many lines this run appended to backup.log */
  operationsLogged = 0;
  /** local copies of repository indexes, for the commands that read a repository's data (not verify, not prune) */
  readonly indexCache: IndexCache;

  constructor(options: GlobalOptions, env: NodeJS.ProcessEnv, streams: Streams) {
    this.options = options;
    this.env = env;
    this.home = resolveHome(env);
    this.paths = statePaths(this.home);
    this.indexCache = new IndexCache(this.paths.cache);
    this.streams = streams;
  }

  get json(): boolean {
    return this.options.json === true;
  }

  get quiet(): boolean {
    return this.options.quiet === true;
  }

  runContext(): RunContext {
    // The real host: locks must name the machine that holds them. `--host` only labels and selects snapshots.
    this.context ??= defaultContext();
    return this.context;
  }

  async config(): Promise<Config> {
    if (!this.configCache) {
      try {
        this.configCache = (await loadConfig(this.home)).config;
      } catch (e) {
        if (e instanceof ConfigError) throw new BackupError('CONFIG_INVALID', e.message, { cause: e, subject: this.paths.config });
        throw e;
      }
    }
    return this.configCache;
  }

  /**
   * --repo, BACKUP_MANAGER_REPO (a folder, or `<gdrive|dropbox|onedrive>:<folder>`), the config's local destination,
   * the first enabled cloud destination when the local one is disabled, or ~/.backup-manager/backups.
   */
  async repoLocation(): Promise<string> {
    this.resolvedRepository = await this.findRepoLocation();
    return this.resolvedRepository;
  }

  private async findRepoLocation(): Promise<string> {
    const given = this.options.repo ?? this.env.BACKUP_MANAGER_REPO;
    if (given !== undefined && given.trim() !== '') return parseCloudLocation(given)?.location ?? path.resolve(expandTilde(given.trim(), os.homedir()));
    const config = await this.config();
    if (config.destinations.local.enabled) return this.localPath(config);
    return firstEnabledCloud(config) ?? this.paths.backups;
  }

  /** The local destination's folder; its default, ~/.backup-manager/backups, follows BACKUP_MANAGER_HOME. */
  localPath(config: Config): string {
    const local = config.destinations.local;
    return local.path !== DEFAULT_LOCAL_PATH ? path.resolve(expandTilde(local.path, os.homedir())) : this.paths.backups;
  }

  async backend(create = false): Promise<Backend> {
    const location = await this.repoLocation();
    const cloud = parseCloudLocation(location);
    if (cloud !== undefined) return openCloudRepository(this, cloud, { create });
    if (create) return LocalBackend.create(location);
    return new LocalBackend(location);
  }

  /**
   * The password, from (in order) --password-file, --password-command, BACKUP_MANAGER_PASSWORD, the config's
   * password_file / password_command, or the generated ~/.backup-manager/password.
   */
  async password(): Promise<string | undefined> {
    const o = this.options;
    if (o.passwordFile) return readPasswordFile(o.passwordFile);
    if (o.passwordCommand) return runPasswordCommand(o.passwordCommand);
    const fromEnv = this.env.BACKUP_MANAGER_PASSWORD;
    if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
    const cfg = (await this.config()).repository;
    if (cfg.password_file) return readPasswordFile(expandTilde(cfg.password_file, os.homedir()));
    if (cfg.password_command) return runPasswordCommand(cfg.password_command);
    if (fs.existsSync(this.paths.password)) return readPasswordFile(this.paths.password);
    return undefined;
  }

  async requirePassword(): Promise<string> {
    const p = await this.password();
    if (p === undefined) {
      throw new BackupError('NO_PASSWORD', `no repository password is configured: set BACKUP_MANAGER_PASSWORD, pass --password-file or --password-command, or keep it in ${this.paths.password}`);
    }
    return p;
  }

  /** For `init`: an existing password source, or a new random one saved to ~/.backup-manager/password (0600). */
  async passwordForInit(): Promise<{ password: string; generatedAt?: string }> {
    const existing = await this.password();
    if (existing !== undefined) return { password: existing };
    const password = randomBytes(24).toString('base64url');
    fs.mkdirSync(this.home, { recursive: true, mode: 0o700 });
    const tmp = `${this.paths.password}.tmp-${process.pid}`;
    fs.writeFileSync(tmp, password + '\n', { mode: 0o600, flag: 'wx' });
    fs.renameSync(tmp, this.paths.password);
    return { password, generatedAt: this.paths.password };
  }

  async openRepository(): Promise<Repository> {
    const backend = await this.backend();
    const password = await this.requirePassword();
    return Repository.open(backend, password, { context: this.runContext() });
  }

  /** Runs `fn` holding a lock, releasing it however `fn` ends. */
  async withLock<T>(repo: Repository, exclusive: boolean, operation: string, fn: (lock: HeldLock) => Promise<T>): Promise<T> {
    const lock = await lockRepository(repo, { exclusive, operation });
    const onLost = (): void => {
      this.streams.stderr.write(`bam: ${(lock.lost.reason as Error).message}\n`);
      this.abort.abort();
    };
    lock.lost.addEventListener('abort', onLost, { once: true });
    try {
      return await fn(lock);
    } finally {
      lock.lost.removeEventListener('abort', onLost);
      await lock.release().catch(() => undefined);
    }
  }

  /** Appends one JSON line to backup.log. Never throws: a log failure must not fail a backup. */
  logOperation(entry: OperationLogEntry): void {
    const ctx = this.runContext();
    const line = { time: new Date().toISOString(), user: ctx.username, host: ctx.hostname, ...entry };
    this.operationsLogged++;
    try {
      fs.mkdirSync(this.home, { recursive: true, mode: 0o700 });
      fs.appendFileSync(this.paths.backupLog, JSON.stringify(line) + '\n', { mode: 0o600 });
    } catch {
      // The log is best effort.
    }
  }

  /** Text for people (stdout), unless --json or --quiet. */
  print(text: string): void {
    if (!this.json && !this.quiet) this.streams.stdout.write(text.endsWith('\n') ? text : text + '\n');
  }

  /** A JSON document or line (stdout), only with --json. */
  printJson(value: unknown): void {
    if (this.json) this.streams.stdout.write(JSON.stringify(value) + '\n');
  }

  /** Messages for people that are not the command's output (stderr), unless --quiet. */
  note(text: string): void {
    if (!this.quiet) this.streams.stderr.write(text.endsWith('\n') ? text : text + '\n');
  }
}

function readPasswordFile(file: string): string {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new BackupError('NO_PASSWORD', `cannot read the password file ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { cause: e });
  }
  const password = text.replace(/\r?\n$/, '');
  if (password === '') throw new BackupError('NO_PASSWORD', `the password file ${file} is empty`);
  return password;
}

function runPasswordCommand(command: string): string {
  let out: string;
  try {
    out = execSync(command, { encoding: 'utf8', stdio: ['inherit', 'pipe', 'pipe'], timeout: 60_000 });
  } catch (e) {
    // The command's output could contain the password: only its exit status is reported.
    const status = (e as { status?: number }).status;
    throw new BackupError('NO_PASSWORD', `the password command failed${status !== undefined ? ` with exit status ${status}` : ''}: check --password-command`);
  }
  const password = out.replace(/\r?\n$/, '');
  if (password === '') throw new BackupError('NO_PASSWORD', 'the password command printed nothing');
  return password;
}
