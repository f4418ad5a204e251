/**
 * The Microsoft identity platform's endpoints and the permissions this destination asks for, as an OAuthClientConfig
 * for the core's OAuthSession and authorizeWithLoopback (used by `bam auth onedrive`).
 */

import type { OAuthClientConfig } from '@backup-manager/core-archive';

/**
 * Read and write the signed-in user's files (the repository lives in a folder of their choice), and
 * `offline_access`, without which the platform issues no refresh token.
 */
export const ONEDRIVE_SCOPES: readonly string[] = ['Files.ReadWrite', 'offline_access'];

/** `common` signs in personal Microsoft accounts and work or school accounts alike. */
export const DEFAULT_TENANT = 'common';

export interface OnedriveOAuthOptions {
  /** The application (client) id of the app registration (a public client: "Mobile and desktop applications"). */
  clientId: string;
  /** Only for a confidential app registration; public clients sign in with PKCE alone. Never logged. */
  clientSecret?: string;
  /** `common` (default), `consumers`, `organizations`, or a tenant id or domain. */
  tenant?: string;
  /** The identity platform's origin (default https://login.microsoftonline.com), e.g. a national cloud's or a test fake's. */
  authorityUrl?: string;
  /** Default: Files.ReadWrite and offline_access. */
  scopes?: string[];
}

export function onedriveOAuthConfig(options: OnedriveOAuthOptions): OAuthClientConfig {
  const authority = (options.authorityUrl ?? 'https://login.microsoftonline.com').replace(/\/+$/, '');
  const base = `${authority}/${encodeURIComponent(options.tenant ?? DEFAULT_TENANT)}/oauth2/v2.0`;
  return {
    provider: 'onedrive',
    clientId: options.clientId,
    ...(options.clientSecret === undefined ? {} : { clientSecret: options.clientSecret }),
    authorizationEndpoint: `${base}/authorize`,
    tokenEndpoint: `${base}/token`,
    scopes: options.scopes ?? [...ONEDRIVE_SCOPES],
  };
}
