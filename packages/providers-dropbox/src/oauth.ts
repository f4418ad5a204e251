/**
 * Dropbox's OAuth endpoints and the scopes this destination asks for, as an OAuthClientConfig for the core's
 * OAuthSession and authorizeWithLoopback (used by `bam auth dropbox`).
 */

import type { OAuthClientConfig } from '@backup-manager/core-archive';

/** Read and write files and their metadata, and read the account (for the name in "account is full" messages). */
export const DROPBOX_SCOPES: readonly string[] = ['account_info.read', 'files.metadata.read', 'files.metadata.write', 'files.content.read', 'files.content.write'];

export interface DropboxOAuthOptions {
  /** The app key of the Dropbox app. */
  appKey: string;
  /** Only for apps that keep a secret; PKCE alone signs in a public app. Never logged. */
  appSecret?: string;
  scopes?: string[];
}

export function dropboxOAuthConfig(options: DropboxOAuthOptions): OAuthClientConfig {
  return {
    provider: 'dropbox',
    clientId: options.appKey,
    ...(options.appSecret === undefined ? {} : { clientSecret: options.appSecret }),
    authorizationEndpoint: 'https://www.dropbox.com/oauth2/authorize',
    tokenEndpoint: 'https://api.dropboxapi.com/oauth2/token',
    scopes: options.scopes ?? [...DROPBOX_SCOPES],
    // "offline": without it Dropbox hands out no refresh token.
    extraAuthorizationParams: { token_access_type: 'offline' },
  };
}
