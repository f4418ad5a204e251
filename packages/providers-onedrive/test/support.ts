/**
 * Test helpers for src/*.test.ts (not published): a OneDrive fake with a signed-in account, core-archive's
 * OAuthSession on the fake's identity endpoint, and an OnedriveBackend pointed at the fake through the real Graph
 * client (the requests keep their production URLs; loopbackFetch delivers them to the fake).
 */

import { createHash } from 'node:crypto';
import { createLoopbackGraphClient, loopbackFetch, startOnedriveFake } from '@backup-manager/cloud-fakes';
import type { OnedriveFake, OnedriveFakeOptions } from '@backup-manager/cloud-fakes';
import { BackupError, MemoryTokenStore, OAuthSession } from '@backup-manager/core-archive';
import type { FileInfo, Handle, OAuthClientConfig, TokenStore } from '@backup-manager/core-archive';
import type { Client } from '@microsoft/microsoft-graph-client';
import { expect } from 'vitest';
import { OnedriveBackend } from '../src/onedrive-backend.ts';
import type { OnedriveBackendOptions } from '../src/onedrive-backend.ts';
import { onedriveOAuthConfig } from '../src/oauth.ts';

export const KiB = 1024;
export const MiB = 1024 * KiB;
/** OneDrive's fragment unit. */
export const FRAGMENT_UNIT = 320 * KiB;
export const ROOT = 'backup-manager/repo1';
/** Fragment PUTs, status GETs and cancels all go to the fake's upload URLs. */
export const UPLOAD_URL_PATH = /^\/up\//;

/** Microsoft's identity platform as `bam auth onedrive` would configure it (the fake serves its token endpoint). */
export function onedriveTestOAuthConfig(clientId = '11111111-2222-3333-4444-555555555555'): OAuthClientConfig {
  return onedriveOAuthConfig({ clientId, tenant: 'consumers' });
}

/** A signed-in account on the fake: an OAuthSession whose store holds a fresh access token and a refresh token. */
export async function signIn(fake: OnedriveFake, store: TokenStore = new MemoryTokenStore()): Promise<OAuthSession> {
  const issued = fake.tokens.issue();
  await store.write({ accessToken: issued.access_token, refreshToken: issued.refresh_token, expiresAt: Date.now() + issued.expires_in * 1000 });
  return new OAuthSession(onedriveTestOAuthConfig(), store, { fetch: loopbackFetch(fake.url) });
}

export interface FakeSetup {
  fake: OnedriveFake;
  session: OAuthSession;
  backend: OnedriveBackend;
  /** Options that open another backend on the same fake and account. */
  options: OnedriveBackendOptions;
}

/** A fresh fake and a created (folders made) backend on it; pacing is off unless asked for. */
export async function openOnFake(
  backendOptions: Partial<OnedriveBackendOptions> = {},
  fakeOptions: OnedriveFakeOptions = {},
): Promise<FakeSetup> {
  const fake = await startOnedriveFake(fakeOptions);
  const session = await signIn(fake);
  const options: OnedriveBackendOptions = {
    root: ROOT,
    session,
    fetchOverride: loopbackFetch(fake.url),
    requestsPerSecond: Number.POSITIVE_INFINITY,
    ...backendOptions,
  };
  const backend = await OnedriveBackend.create(options);
  return { fake, session, backend, options };
}

/** The fake's path of a repository file (`/backup-manager/repo1/data/ab/ab…`). */
export function drivePathOf(h: Handle): string {
  if (h.type === 'config') return `/${ROOT}/config`;
  return h.type === 'data' ? `/${ROOT}/data/${h.name.slice(0, 2)}/${h.name}` : `/${ROOT}/${h.type}/${h.name}`;
}

/** Pseudo-random bytes from a seed (xorshift32), and the data handle named by their SHA-256, as the repository names files. */
export function dataFile(size: number, seed: number): { h: Handle; data: Uint8Array } {
  const words = new Uint32Array(Math.ceil(size / 4));
  let x = (seed * 2654435761 + 1) >>> 0 || 1;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    words[i] = x;
  }
  const data = new Uint8Array(words.buffer, 0, size);
  return { h: { type: 'data', name: createHash('sha256').update(data).digest('hex') }, data };
}

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

export async function collect(listing: AsyncIterable<FileInfo>): Promise<FileInfo[]> {
  const out: FileInfo[] = [];
  for await (const info of listing) out.push(info);
  return out;
}

/** The BackupError `call` rejects with; fails the test when it resolves or rejects with something else. */
export async function failure(call: Promise<unknown>): Promise<BackupError> {
  try {
    await call;
  } catch (e) {
    expect(e).toBeInstanceOf(BackupError);
    return e as BackupError;
  }
  throw new Error('expected the call to fail');
}

/** Sleeps recorded instead of waited, for RetryBackend and the pacer. */
export function recordingSleep(): { sleeps: number[]; sleep: (ms: number) => Promise<void> } {
  const sleeps: number[] = [];
  return { sleeps, sleep: async (ms) => void sleeps.push(ms) };
}

/** A plain Graph client on the fake for the test's own set-up (foreign files, stray folders), outside the backend. */
export function graphOnFake(setup: Pick<FakeSetup, 'fake' | 'session'>): Promise<Client> {
  return createLoopbackGraphClient({ fakeUrl: setup.fake.url, getAccessToken: () => setup.session.accessToken() });
}

/** Puts a file at a drive path (`a/b/c.bin`, parents must exist) with a simple upload. */
export async function putFile(client: Client, drivePath: string, content: string | Uint8Array): Promise<void> {
  const encoded = drivePath.split('/').map((s) => encodeURIComponent(s)).join('/');
  const body = typeof content === 'string' ? Buffer.from(content) : Buffer.from(content.buffer, content.byteOffset, content.byteLength);
  await client.api(`/me/drive/root:/${encoded}:/content`).header('Content-Type', 'application/octet-stream').put(body);
}

/** Creates a folder at a drive path (its parent must exist). */
export async function makeFolder(client: Client, drivePath: string): Promise<void> {
  const parts = drivePath.split('/');
  const name = parts.pop() ?? '';
  const parent = parts.map((s) => encodeURIComponent(s)).join('/');
  await client.api(parent === '' ? '/me/drive/root/children' : `/me/drive/root:/${parent}:/children`).post({ name, folder: {} });
}

export interface SeenRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: Headers;
  /** The body as text, for JSON bodies; undefined for bytes and empty bodies. */
  readonly json: unknown;
}

/**
 * A fetch on the fake that records what the backend sends (the fake's log has no bodies) and lets a test act just
 * before a request goes out.
 */
export function spyingFetch(fake: OnedriveFake, before?: (request: SeenRequest) => void): { fetch: typeof fetch; seen: SeenRequest[] } {
  const base = loopbackFetch(fake.url);
  const seen: SeenRequest[] = [];
  const spy = (async (input: string | URL | Request, init: RequestInit = {}) => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    const headers = new Headers(init.headers);
    let json: unknown;
    if (typeof init.body === 'string' && init.body !== '') {
      try {
        json = JSON.parse(init.body);
      } catch {
        json = undefined;
      }
    }
    const request: SeenRequest = { method: (init.method ?? 'GET').toUpperCase(), url, headers, json };
    seen.push(request);
    before?.(request);
    return base(input, init);
  }) as typeof fetch;
  return { fetch: spy, seen };
}
