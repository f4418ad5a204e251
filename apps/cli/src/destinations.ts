/**
 * Which Backend stands behind each destination: the one place where `bam` composes the cloud providers with the
 * core's wrappers (ARCHITECTURE.md: one explicit registry per app, nothing registered at import time). It turns a
 * repository location (`/srv/bam`, `gdrive:backups/repo1`, `dropbox:/backups/repo1`, `onedrive:backups/repo1`)
 * or a destination of config.json into a Backend, signs the providers in with the tokens `bam auth` saved, and
 * applies the endpoint overrides (BACKUP_MANAGER_<PROVIDER>_{AUTH,TOKEN,API}_URL) that let tests use local fakes.
 *
 * Every cloud backend is wrapped, outermost first: append-only (when the destination is), bandwidth limit (with
 * --limit-upload/--limit-download), RetryBackend (exponential backoff with jitter, Retry-After honoured), then a
 * connection limit around the provider, so that an attempt waiting to be retried does not hold a connection.
 *
 * The provider packages (and the SDKs behind them) are imported only when a cloud destination is signed in to or
 * opened: loading all three would cost every other command, `bam --version` included, about 6 MB and 0.2 s of CPU.
 */
import path from 'node:path';
import type { CloudDestination, Config } from '@backup-manager/config';
import {
  AppendOnlyBackend, BackupError, BandwidthLimitBackend, ConnectionLimitBackend, FileTokenStore, LocalBackend, OAuthSession,
  RetryBackend, isBackupError,
} from '@backup-manager/core-archive';
import type { Backend, OAuthClientConfig, RetryOptions } from '@backup-manager/core-archive';
import type { Runtime } from './runtime.ts';

/** What the registry needs to open one provider's backend. */
interface OpenOptions {
  /** The repository folder, normalised by the entry's `normalize`. */
  path: string;
  session: OAuthSession;
  /** BACKUP_MANAGER_<PROVIDER>_API_URL: every API request goes to this origin instead. */
  apiUrl: string | undefined;
  /** Make the repository's folders where missing (init, and a destination's first sync). */
  create: boolean;
}

interface ProviderEntry {
  /** `--repo <scheme>:<path>`; the first one is how locations are written. */
  readonly schemes: readonly string[];
  /** BACKUP_MANAGER_<NAME>_AUTH_URL and friends; the first one is the documented name. */
  readonly envNames: readonly string[];
  /** The config key that holds the OAuth client id, for messages. */
  readonly clientIdKey: string;
  /** The repository folder as the provider's backend writes it in its `location`. */
  readonly normalize: (folder: string) => string;
  /** The provider's OAuth settings from config.json, or undefined when no client id is configured. */
  readonly oauth: (config: Config) => Promise<OAuthClientConfig | undefined>;
  readonly open: (options: OpenOptions) => Promise<Backend>;
}

const segments = (folder: string): string => folder.split('/').filter((s) => s !== '').join('/');

/** The registry: destination name → how to sign in and open its Backend. */
export const CLOUD_PROVIDERS: { readonly [P in CloudDestination]: ProviderEntry } = {
  google_drive: {
    schemes: ['gdrive', 'google_drive'],
    envNames: ['GOOGLE_DRIVE', 'GDRIVE'],
    clientIdKey: 'client_id',
    normalize: segments,
    oauth: async (config) => {
      const d = config.destinations.google_drive;
      if (d.client_id === undefined) return undefined;
      const { googleDriveOAuthConfig } = await import('@backup-manager/providers-gdrive');
      return googleDriveOAuthConfig({ clientId: d.client_id, ...(d.client_secret === undefined ? {} : { clientSecret: d.client_secret }) });
    },
    open: async ({ path: folder, session, apiUrl, create }) => {
      const { GdriveBackend } = await import('@backup-manager/providers-gdrive');
      const options = { folder, session, ...(apiUrl === undefined ? {} : { rootUrl: apiUrl }) };
      return create ? GdriveBackend.create(options) : new GdriveBackend(options);
    },
  },
  dropbox: {
    schemes: ['dropbox'],
    envNames: ['DROPBOX'],
    clientIdKey: 'app_key',
    normalize: (folder) => `/${segments(folder)}`,
    oauth: async (config) => {
      const d = config.destinations.dropbox;
      if (d.app_key === undefined) return undefined;
      const { dropboxOAuthConfig } = await import('@backup-manager/providers-dropbox');
      return dropboxOAuthConfig({ appKey: d.app_key, ...(d.app_secret === undefined ? {} : { appSecret: d.app_secret }) });
    },
    open: async ({ path: root, session, apiUrl, create }) => {
      const { DropboxBackend } = await import('@backup-manager/providers-dropbox');
      const options = { root, session, ...(apiUrl === undefined ? {} : { fetch: originRewritingFetch(apiUrl) }) };
      return create ? DropboxBackend.create(options) : new DropboxBackend(options);
    },
  },
  onedrive: {
    schemes: ['onedrive'],
    envNames: ['ONEDRIVE'],
    clientIdKey: 'client_id',
    normalize: segments,
    oauth: async (config) => {
      const d = config.destinations.onedrive;
      if (d.client_id === undefined) return undefined;
      const { onedriveOAuthConfig } = await import('@backup-manager/providers-onedrive');
      return onedriveOAuthConfig({ clientId: d.client_id, tenant: d.tenant });
    },
    open: async ({ path: root, session, apiUrl, create }) => {
      const { OnedriveBackend } = await import('@backup-manager/providers-onedrive');
      const options = { root, session, ...(apiUrl === undefined ? {} : { fetchOverride: originRewritingFetch(apiUrl) }) };
      return create ? OnedriveBackend.create(options) : new OnedriveBackend(options);
    },
  },
};

const PROVIDER_NAMES = Object.keys(CLOUD_PROVIDERS) as CloudDestination[];

/** Operations in flight per cloud destination: enough to fill a link, few enough not to be throttled. */
const CLOUD_CONNECTIONS = 4;

/** `bam auth` names: the destination names and the schemes (`gdrive`). */
export function providerNamed(name: string): CloudDestination | undefined {
  const n = name.trim().toLowerCase();
  return PROVIDER_NAMES.find((p) => p === n || CLOUD_PROVIDERS[p].schemes.includes(n));
}

export interface CloudLocation {
  provider: CloudDestination;
  /** The folder, normalised: `backups/repo1` (Drive, OneDrive) or `/backups/repo1` (Dropbox). */
  path: string;
  /** `<scheme>:<path>`, as the provider's backend names itself. */
  location: string;
}

/** `gdrive:backups/repo1` and the like; undefined for anything else (a local path). */
export function parseCloudLocation(text: string): CloudLocation | undefined {
  const m = /^([a-z_]+):(.*)$/i.exec(text.trim());
  if (m === null) return undefined;
  const provider = PROVIDER_NAMES.find((p) => CLOUD_PROVIDERS[p].schemes.includes(m[1]!.toLowerCase()));
  if (provider === undefined) return undefined;
  const entry = CLOUD_PROVIDERS[provider];
  const folder = entry.normalize(m[2]!);
  if (folder === '' || folder === '/') {
    throw new BackupError('INVALID_ARGUMENT', `${text} names no folder: give the repository's folder, e.g. ${entry.schemes[0]}:${provider === 'dropbox' ? '/' : ''}backups/repo1`);
  }
  return { provider, path: folder, location: `${entry.schemes[0]}:${folder}` };
}

function cloudLocationOf(provider: CloudDestination, folder: string): CloudLocation {
  const entry = CLOUD_PROVIDERS[provider];
  const normalized = entry.normalize(folder);
  return { provider, path: normalized, location: `${entry.schemes[0]}:${normalized}` };
}

/** One destination of config.json that is enabled. */
export interface ConfiguredDestination {
  name: 'local' | CloudDestination;
  /** A folder for `local`, `<scheme>:<path>` for a cloud. */
  location: string;
  appendOnly: boolean;
}

/** The enabled destinations of config.json: local first, then the clouds in the schema's order. */
export function enabledDestinations(rt: Runtime, config: Config): ConfiguredDestination[] {
  const out: ConfiguredDestination[] = [];
  const local = config.destinations.local;
  if (local.enabled) out.push({ name: 'local', location: rt.localPath(config), appendOnly: local.append_only });
  for (const provider of PROVIDER_NAMES) {
    const d = config.destinations[provider];
    if (d.enabled) out.push({ name: provider, location: cloudLocationOf(provider, d.path).location, appendOnly: d.append_only });
  }
  return out;
}

/** The repository when the local destination is disabled: the first enabled cloud destination, if any. */
export function firstEnabledCloud(config: Config): string | undefined {
  const provider = PROVIDER_NAMES.find((p) => config.destinations[p].enabled);
  return provider === undefined ? undefined : cloudLocationOf(provider, config.destinations[provider].path).location;
}

/**
 * Opens a configured destination as a sync target; `create` makes its folders where missing (not for a dry run:
 * every backend lists a missing folder as empty).
 */
export async function openDestination(rt: Runtime, d: ConfiguredDestination, options: { create: boolean }): Promise<Backend> {
  if (d.name === 'local') {
    const local = options.create ? await LocalBackend.create(d.location) : new LocalBackend(d.location);
    return d.appendOnly ? new AppendOnlyBackend(local) : local;
  }
  return openCloud(rt, parseCloudLocation(d.location)!, { create: options.create, appendOnly: d.appendOnly });
}

/**
 * The Backend of a repository named `--repo <scheme>:<path>`. When that is the configured destination of its
 * provider and the destination is append-only, deletes are refused here too.
 */
export async function openCloudRepository(rt: Runtime, cloud: CloudLocation, options: { create: boolean }): Promise<Backend> {
  const config = await rt.config();
  const d = config.destinations[cloud.provider];
  const appendOnly = d.append_only && cloudLocationOf(cloud.provider, d.path).location === cloud.location;
  return openCloud(rt, cloud, { create: options.create, appendOnly });
}

async function openCloud(rt: Runtime, cloud: CloudLocation, options: { create: boolean; appendOnly: boolean }): Promise<Backend> {
  const entry = CLOUD_PROVIDERS[cloud.provider];
  const session = new OAuthSession(await oauthConfigFor(rt, cloud.provider), new FileTokenStore(tokenFile(rt, cloud.provider)));
  const retry = retryOptions(rt.env);
  const apiUrl = endpointOverride(rt.env, cloud.provider, 'API');
  const open = () => entry.open({ path: cloud.path, session, apiUrl, create: options.create });
  // Creating folders is several requests that no RetryBackend covers yet: give it the same patience.
  const provider = options.create ? await retried(open, retry) : await open();
  let backend: Backend = new RetryBackend(new ConnectionLimitBackend(provider, CLOUD_CONNECTIONS), retry);
  const limits = bandwidthLimits(rt);
  if (limits !== undefined) backend = new BandwidthLimitBackend(backend, limits);
  return options.appendOnly ? new AppendOnlyBackend(backend) : backend;
}

/** ~/.backup-manager/<provider>-token.json */
export function tokenFile(rt: Runtime, provider: CloudDestination): string {
  return path.join(rt.home, `${provider}-token.json`);
}

/** The provider's OAuth settings from config.json, with the endpoint overrides of the environment applied. */
export async function oauthConfigFor(rt: Runtime, provider: CloudDestination): Promise<OAuthClientConfig> {
  const entry = CLOUD_PROVIDERS[provider];
  const base = await entry.oauth(await rt.config());
  if (base === undefined) {
    throw new BackupError(
      'CONFIG_INVALID',
      `no OAuth client is configured for ${provider}: add "${entry.clientIdKey}" under destinations.${provider} in ${rt.paths.config}, then run \`bam auth ${provider}\``,
      { subject: rt.paths.config },
    );
  }
  const auth = endpointOverride(rt.env, provider, 'AUTH');
  const token = endpointOverride(rt.env, provider, 'TOKEN');
  return { ...base, ...(auth === undefined ? {} : { authorizationEndpoint: auth }), ...(token === undefined ? {} : { tokenEndpoint: token }) };
}

/** BACKUP_MANAGER_<PROVIDER>_<kind>_URL, checked to be an http(s) URL. */
function endpointOverride(env: NodeJS.ProcessEnv, provider: CloudDestination, kind: 'AUTH' | 'TOKEN' | 'API'): string | undefined {
  for (const name of CLOUD_PROVIDERS[provider].envNames) {
    const variable = `BACKUP_MANAGER_${name}_${kind}_URL`;
    const value = env[variable]?.trim();
    if (value === undefined || value === '') continue;
    let url: URL | undefined;
    try {
      url = new URL(value);
    } catch {
      url = undefined;
    }
    if (url === undefined || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
      throw new BackupError('INVALID_ARGUMENT', `${variable} is not an http(s) URL: set it to an address such as http://127.0.0.1:8080, or unset it`);
    }
    return kind === 'API' ? url.origin : url.href;
  }
  return undefined;
}

/** BACKUP_MANAGER_RETRY_ATTEMPTS and BACKUP_MANAGER_RETRY_DELAY_MS, else RetryBackend's defaults (8, 500 ms). */
function retryOptions(env: NodeJS.ProcessEnv): RetryOptions {
  const number = (variable: string, min: number): number | undefined => {
    const text = env[variable]?.trim();
    if (text === undefined || text === '') return undefined;
    const n = Number(text);
    if (!Number.isSafeInteger(n) || n < min) throw new BackupError('INVALID_ARGUMENT', `${variable} must be a whole number >= ${min}, not ${JSON.stringify(text)}`);
    return n;
  };
  const maxAttempts = number('BACKUP_MANAGER_RETRY_ATTEMPTS', 1);
  const baseDelayMs = number('BACKUP_MANAGER_RETRY_DELAY_MS', 0);
  return { ...(maxAttempts === undefined ? {} : { maxAttempts }), ...(baseDelayMs === undefined ? {} : { baseDelayMs }) };
}

/** Runs `fn` again after retryable failures, with the backoff RetryBackend uses. */
async function retried<T>(fn: () => Promise<T>, options: RetryOptions): Promise<T> {
  const attempts = options.maxAttempts ?? 8;
  const base = options.baseDelayMs ?? 500;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (e) {
      if (!isBackupError(e) || !e.retryable || attempt >= attempts) throw e;
      const delay = Math.max(Math.floor(Math.random() * Math.min(60_000, base * 2 ** (attempt - 1))), e.retryAfterMs ?? 0);
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
}

/** --limit-upload / --limit-download in KiB/s, as bytes per second. */
function bandwidthLimits(rt: Runtime): { uploadBytesPerSecond?: number; downloadBytesPerSecond?: number } | undefined {
  const parse = (option: string, text: string | undefined): number | undefined => {
    if (text === undefined) return undefined;
    const n = Number(text);
    if (!Number.isFinite(n) || n <= 0) throw new BackupError('INVALID_ARGUMENT', `${option} takes a rate in KiB/s greater than 0, e.g. ${option} 2048; got ${JSON.stringify(text)}`);
    return n * 1024;
  };
  const up = parse('--limit-upload', rt.options.limitUpload);
  const down = parse('--limit-download', rt.options.limitDownload);
  if (up === undefined && down === undefined) return undefined;
  return { ...(up === undefined ? {} : { uploadBytesPerSecond: up }), ...(down === undefined ? {} : { downloadBytesPerSecond: down }) };
}

/**
 * A fetch that sends every request to `origin` instead of the host in its URL, keeping path and query, for the
 * SDKs that address several fixed hosts (Dropbox's api/content hosts, Graph and its upload and download URLs). The
 * host that was meant goes along in `x-fake-host`, so a stand-in server can answer with links to that host. It
 * follows redirects itself (through `origin` too) unless the caller handles them (`redirect: 'manual'`), and does
 * not carry Authorization to another host.
 */
function originRewritingFetch(origin: string): typeof fetch {
  const rewritten = async (input: string | URL | Request, init: RequestInit = {}): Promise<Response> => {
    let target = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    let method = (init.method ?? (input instanceof Request ? input.method : 'GET')).toUpperCase();
    let headers = new Headers(init.headers ?? (input instanceof Request ? input.headers : undefined));
    let body = init.body ?? (input instanceof Request && method !== 'GET' && method !== 'HEAD' ? await input.arrayBuffer() : undefined);
    for (let hop = 0; ; hop++) {
      const meant = new URL(target);
      headers.set('x-fake-host', meant.host);
      const response = await fetch(`${origin}${meant.pathname}${meant.search}`, {
        ...init,
        method,
        headers,
        body: body ?? null,
        redirect: 'manual',
      });
      const location = response.headers.get('location');
      if (init.redirect === 'manual' || ![301, 302, 303, 307, 308].includes(response.status) || location === null || hop >= 5) return response;
      await response.body?.cancel();
      const next = new URL(location, target);
      if (next.host !== meant.host) {
        headers = new Headers(headers);
        headers.delete('authorization');
      }
      if (response.status === 303 || ((response.status === 301 || response.status === 302) && method === 'POST')) {
        method = 'GET';
        body = undefined;
      }
      target = next.href;
    }
  };
  return rewritten as typeof fetch;
}
