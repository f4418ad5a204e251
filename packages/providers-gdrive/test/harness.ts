/**
 * Test-only: a Google Drive fake, a session signed in to it and a GdriveBackend on it, wired the way the product
 * wires them. Not exported from the package.
 */

import { startGdriveFake } from '@backup-manager/cloud-fakes';
import type { GdriveFake, GdriveFakeOptions, GdriveFile } from '@backup-manager/cloud-fakes';
import { MemoryTokenStore, OAuthSession } from '@backup-manager/core-archive';
import type { OAuthTokens, TokenStore } from '@backup-manager/core-archive';
import { GdriveBackend } from '../src/gdrive-backend.ts';
import type { GdriveBackendOptions } from '../src/gdrive-backend.ts';
import { googleDriveOAuthConfig } from '../src/oauth.ts';

export const FOLDER = 'backup-manager/repo1';

export interface Harness {
  fake: GdriveFake;
  tokens: OAuthTokens;
  store: TokenStore;
  session: OAuthSession;
  options: GdriveBackendOptions;
  backend: GdriveBackend;
}

export interface HarnessOptions {
  fake?: GdriveFakeOptions;
  backend?: Partial<GdriveBackendOptions>;
  /** Where the session keeps its tokens (default: memory). */
  store?: (tokens: OAuthTokens) => Promise<TokenStore>;
}

export async function startHarness(options: HarnessOptions = {}): Promise<Harness> {
  const fake = await startGdriveFake(options.fake);
  const issued = fake.tokens.issue();
  const tokens: OAuthTokens = { accessToken: issued.access_token, refreshToken: issued.refresh_token, expiresAt: Date.now() + 3600_000 };
  const store = options.store === undefined ? new MemoryTokenStore(tokens) : await options.store(tokens);
  const session = new OAuthSession(
    googleDriveOAuthConfig({ clientId: 'cid.apps.example', clientSecret: 'csecret', tokenEndpoint: `${fake.url}/token`, authorizationEndpoint: `${fake.url}/auth` }),
    store,
  );
  const backendOptions: GdriveBackendOptions = { folder: FOLDER, session, rootUrl: fake.url, requestsPerSecond: Infinity, ...options.backend };
  const backend = await GdriveBackend.create(backendOptions);
  return { fake, tokens, store, session, options: backendOptions, backend };
}

/** The fake's record of the folder at `path` under My Drive. */
export function folderAt(fake: GdriveFake, path: string): GdriveFile {
  let parent = fake.rootId;
  let found: GdriveFile | undefined;
  for (const name of path.split('/')) {
    found = [...fake.files.values()].find((f) => f.name === name && f.parents.includes(parent) && f.mimeType === 'application/vnd.google-apps.folder' && !f.trashed);
    if (found === undefined) throw new Error(`no folder ${path} in the fake`);
    parent = found.id;
  }
  if (found === undefined) throw new Error('empty path');
  return found;
}

/** Files (not folders) directly in a folder of the fake, trashed ones excluded. */
export function filesIn(fake: GdriveFake, folderId: string): GdriveFile[] {
  return [...fake.files.values()].filter((f) => f.parents.includes(folderId) && f.mimeType !== 'application/vnd.google-apps.folder' && !f.trashed);
}
