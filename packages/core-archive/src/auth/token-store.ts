/**
 * Where a cloud provider's OAuth tokens are kept between runs: a file in the state folder (written atomically,
 * readable by its owner only) or memory (tests, one-off runs). The stores never log or describe a token.
 */

import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { BackupError } from '../errors.ts';

/** What a token endpoint gave us, in the form the project stores it. */
export interface OAuthTokens {
  accessToken: string;
  refreshToken?: string;
  /** When the access token expires, in milliseconds since the epoch; absent when the service did not say. */
  expiresAt?: number;
  scope?: string;
  tokenType?: string;
}

export interface TokenStore {
  /** The stored tokens, or undefined when nothing is stored yet. */
  read(): Promise<OAuthTokens | undefined>;
  /** Replaces the stored tokens; a reader sees the old or the new tokens, never a mix. */
  write(tokens: OAuthTokens): Promise<void>;
  /**
   * Runs `fn` while holding the store exclusively against other processes and sessions using the same store, so
   * that two of them never refresh the same tokens at once. Optional: a store without it is not shared.
   */
  exclusive?<T>(fn: () => Promise<T>): Promise<T>;
}

/** Tokens in memory only: for tests, and for credentials handed in through the environment. */
export class MemoryTokenStore implements TokenStore {
  #tokens: OAuthTokens | undefined;
  #queue: Promise<unknown> = Promise.resolve();

  constructor(tokens?: OAuthTokens) {
    this.#tokens = tokens === undefined ? undefined : { ...tokens };
  }

  async read(): Promise<OAuthTokens | undefined> {
    return this.#tokens === undefined ? undefined : { ...this.#tokens };
  }

  async write(tokens: OAuthTokens): Promise<void> {
    this.#tokens = { ...tokens };
  }

  /** Serialises the callers that share this object (the only way to share a memory store). */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn, fn);
    this.#queue = run.catch(() => undefined);
    return run;
  }
}

const FILE_MODE = 0o600;
const DIR_MODE = 0o700;
/** A lock file older than this was left by a process that died while refreshing; it is taken over. */
const LOCK_STALE_MS = 120_000;
/** How long a refresh waits for another process's refresh before giving up. */
const LOCK_WAIT_MS = 60_000;
const LOCK_POLL_MS = 25;

export interface FileTokenStoreOptions {
  /** Milliseconds since the epoch (default Date.now); decides when a lock is stale. */
  now?: () => number;
}

/**
 * Tokens in a JSON file, e.g. `~/.backup-manager/google_drive-token.json`. Writes go to a temporary file created
 * with mode 0600 in the same folder, are synced and renamed over the file, so a crash leaves the old or the new
 * tokens, and no other user can read them at any moment. `exclusive` uses a `<file>.lock` beside it.
 */
export class FileTokenStore implements TokenStore {
  readonly path: string;
  readonly #now: () => number;

  constructor(file: string, options: FileTokenStoreOptions = {}) {
    this.path = path.resolve(file);
    this.#now = options.now ?? Date.now;
  }

  async read(): Promise<OAuthTokens | undefined> {
    let text: string;
    try {
      text = await fsp.readFile(this.path, 'utf8');
    } catch (e) {
      if (errorCode(e) === 'ENOENT') return undefined;
      throw this.#ioError(e, 'read');
    }
    const tokens = parseStoredTokens(text);
    if (tokens === undefined) {
      throw new BackupError(
        'CONFIG_INVALID',
        `the saved sign-in in ${this.path} is damaged (not the expected JSON); delete the file and sign in again`,
        { subject: this.path },
      );
    }
    return tokens;
  }

  async write(tokens: OAuthTokens): Promise<void> {
    const dir = path.dirname(this.path);
    const temp = path.join(dir, `.${path.basename(this.path)}.${randomBytes(8).toString('hex')}.tmp`);
    let created = false;
    try {
      await fsp.mkdir(dir, { recursive: true, mode: DIR_MODE });
      const handle = await fsp.open(temp, 'wx', FILE_MODE);
      created = true;
      try {
        // The mode given to open is reduced by the umask; make sure it is exactly 0600 before any byte is written.
        await handle.chmod(FILE_MODE);
        await handle.writeFile(`${JSON.stringify(storedForm(tokens), null, 2)}\n`, 'utf8');
        await handle.sync();
      } finally {
        await handle.close();
      }
      await fsp.rename(temp, this.path);
      created = false;
    } catch (e) {
      if (created) await fsp.rm(temp, { force: true }).catch(() => {});
      throw this.#ioError(e, 'write');
    }
  }

  async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const lock = `${this.path}.lock`;
    await this.#acquire(lock);
    try {
      return await fn();
    } finally {
      await fsp.rm(lock, { force: true }).catch(() => {});
    }
  }

  async #acquire(lock: string): Promise<void> {
    const deadline = this.#now() + LOCK_WAIT_MS;
    await fsp.mkdir(path.dirname(lock), { recursive: true, mode: DIR_MODE }).catch((e: unknown) => {
      throw this.#ioError(e, 'lock');
    });
    for (;;) {
      try {
        const handle = await fsp.open(lock, 'wx', FILE_MODE);
        await handle.writeFile(`${process.pid}\n`, 'utf8').finally(() => handle.close());
        return;
      } catch (e) {
        if (errorCode(e) !== 'EEXIST') throw this.#ioError(e, 'lock');
      }
      const since = await fsp.stat(lock).then((s) => s.mtimeMs, () => undefined);
      if (since !== undefined && this.#now() - since > LOCK_STALE_MS) {
        await fsp.rm(lock, { force: true }).catch(() => {});
        continue;
      }
      if (this.#now() > deadline) {
        throw new BackupError(
          'LOCKED',
          `another process has been refreshing the sign-in in ${this.path} for over a minute; if none is running, delete ${lock} and try again`,
          { subject: lock },
        );
      }
      await new Promise((resolve) => setTimeout(resolve, LOCK_POLL_MS));
    }
  }

  #ioError(e: unknown, what: 'read' | 'write' | 'lock'): BackupError {
    const code = errorCode(e);
    const verb = what === 'lock' ? 'lock' : what;
    return new BackupError(
      code === 'EACCES' || code === 'EPERM' ? 'PERMISSION_DENIED' : 'IO',
      `cannot ${verb} the saved sign-in ${this.path} (${code ?? 'error'}); check that this user owns the folder ${path.dirname(this.path)}`,
      { cause: e, subject: this.path },
    );
  }
}

/** The file's JSON form: camelCase fields and a version, so the format can change later. */
function storedForm(tokens: OAuthTokens): Record<string, unknown> {
  return {
    version: 1,
    accessToken: tokens.accessToken,
    ...(tokens.refreshToken === undefined ? {} : { refreshToken: tokens.refreshToken }),
    ...(tokens.expiresAt === undefined ? {} : { expiresAt: tokens.expiresAt }),
    ...(tokens.scope === undefined ? {} : { scope: tokens.scope }),
    ...(tokens.tokenType === undefined ? {} : { tokenType: tokens.tokenType }),
  };
}

function parseStoredTokens(text: string): OAuthTokens | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const v = value as Record<string, unknown>;
  if (typeof v['accessToken'] !== 'string') return undefined;
  const optionalString = (k: string) => (typeof v[k] === 'string' ? { [k]: v[k] as string } : {});
  return {
    accessToken: v['accessToken'],
    ...optionalString('refreshToken'),
    ...(typeof v['expiresAt'] === 'number' && Number.isFinite(v['expiresAt']) ? { expiresAt: v['expiresAt'] } : {}),
    ...optionalString('scope'),
    ...optionalString('tokenType'),
  };
}

function errorCode(e: unknown): string | undefined {
  return typeof e === 'object' && e !== null && 'code' in e ? String(e.code) : undefined;
}
