/**
 * Helpers for the cloud end-to-end tests: the environment that points `bam` at the in-process fakes of
 * @backup-manager/cloud-fakes, the browser step of `bam auth` (follow the printed address with fetch), and a check
 * that no token saved by `bam auth` ever shows up in what `bam` printed or logged.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { expect } from 'vitest';
import { describeRun, startBam } from './support.ts';
import type { RunOptions, RunResult } from './support.ts';

export type Provider = 'google_drive' | 'dropbox' | 'onedrive';

/** BACKUP_MANAGER_<PROVIDER>_{AUTH,TOKEN,API}_URL for a fake at `url` (the paths each fake serves). */
export function endpointEnv(provider: Provider, url: string): Record<string, string> {
  const name = provider.toUpperCase();
  const paths = {
    google_drive: { auth: '/auth', token: '/token' },
    dropbox: { auth: '/oauth2/authorize', token: '/oauth2/token' },
    onedrive: { auth: '/consumers/oauth2/v2.0/authorize', token: '/consumers/oauth2/v2.0/token' },
  }[provider];
  return {
    [`BACKUP_MANAGER_${name}_AUTH_URL`]: `${url}${paths.auth}`,
    [`BACKUP_MANAGER_${name}_TOKEN_URL`]: `${url}${paths.token}`,
    [`BACKUP_MANAGER_${name}_API_URL`]: url,
  };
}

/** Few, quick retries: a destination that is down fails in well under a second. */
export const FAST_RETRIES = { BACKUP_MANAGER_RETRY_ATTEMPTS: '2', BACKUP_MANAGER_RETRY_DELAY_MS: '20' };

/** A port on 127.0.0.1 where nothing listens: a service that is down. */
export async function deadPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * Runs `bam auth <name> --json` and plays the browser: waits for the printed address, opens it with fetch (the
 * fake consents at once and redirects to bam's loopback listener), and returns bam's result and the page shown.
 */
export async function authThroughBrowser(name: string, options: RunOptions): Promise<{ run: RunResult; page: string; url: string }> {
  const running = startBam(['auth', name, '--json'], options);
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    running.child.stdout?.on('data', (b: Buffer) => {
      out += b.toString('utf8');
      for (const line of out.split('\n')) {
        if (!line.includes('"auth-url"')) continue;
        resolve((JSON.parse(line) as { url: string }).url);
      }
    });
    running.result.then((r) => reject(new Error(`bam auth ended before printing an address\n${describeRun(['auth', name], r)}`)), reject);
  });
  const response = await fetch(url);
  const page = await response.text();
  const run = await running.result;
  return { run, page, url };
}

export interface SavedTokens {
  version: number;
  accessToken: string;
  refreshToken?: string;
  expiresAt?: number;
}

export function readTokens(home: string, provider: Provider): SavedTokens {
  return JSON.parse(fs.readFileSync(path.join(home, `${provider}-token.json`), 'utf8')) as SavedTokens;
}

/** Fails when any token ever saved (collected in `seen`) appears in a run's output or in backup.log. */
export function expectNoTokens(seen: ReadonlySet<string>, home: string, runs: readonly RunResult[]): void {
  const log = fs.existsSync(path.join(home, 'backup.log')) ? fs.readFileSync(path.join(home, 'backup.log'), 'utf8') : '';
  const texts = [log, ...runs.flatMap((r) => [r.stdout, r.stderr])];
  for (const token of seen) {
    expect(token.length).toBeGreaterThan(10);
    for (const text of texts) expect(text.includes(token), 'a token leaked into output or backup.log').toBe(false);
  }
}

/** Remembers the tokens now in the provider's token file. */
export function collectTokens(seen: Set<string>, home: string, provider: Provider): SavedTokens {
  const t = readTokens(home, provider);
  seen.add(t.accessToken);
  if (t.refreshToken !== undefined) seen.add(t.refreshToken);
  return t;
}

/** The JSON lines of a run's stdout. */
export function lines(r: RunResult): Record<string, unknown>[] {
  return r.stdout
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

export function logLines(home: string): Record<string, unknown>[] {
  return fs
    .readFileSync(path.join(home, 'backup.log'), 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}
