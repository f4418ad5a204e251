/**
 * Google's OAuth endpoints and the scope this destination asks for, as an OAuthClientConfig for the core's
 * OAuthSession and authorizeWithLoopback (used by `bam auth google_drive`).
 */

import type { OAuthClientConfig } from '@backup-manager/core-archive';

/**
 * Access to the files and folders this app creates or opens, and nothing else in the Drive. It is enough for a
 * repository the app created, and unlike the full `drive` scope it needs no security assessment by Google.
 */
export const GOOGLE_DRIVE_FILE_SCOPE = 'https://www.googleapis.com/auth/drive.file';
export const GOOGLE_AUTHORIZATION_ENDPOINT = 'https://accounts.google.com/o/oauth2/v2/auth';
export const GOOGLE_TOKEN_ENDPOINT = 'https://oauth2.googleapis.com/token';

export interface GoogleDriveOAuthOptions {
  /** The OAuth client of type "Desktop app" from the Google Cloud console. */
  clientId: string;
  /** Desktop clients have a secret that Google does not treat as confidential; it is still never logged. */
  clientSecret?: string;
  /** For tests against a local fake. */
  authorizationEndpoint?: string;
  tokenEndpoint?: string;
  /** Default: drive.file only. */
  scopes?: string[];
}

export function googleDriveOAuthConfig(options: GoogleDriveOAuthOptions): OAuthClientConfig {
  return {
    provider: 'google_drive',
    clientId: options.clientId,
    ...(options.clientSecret === undefined ? {} : { clientSecret: options.clientSecret }),
    authorizationEndpoint: options.authorizationEndpoint ?? GOOGLE_AUTHORIZATION_ENDPOINT,
    tokenEndpoint: options.tokenEndpoint ?? GOOGLE_TOKEN_ENDPOINT,
    scopes: options.scopes ?? [GOOGLE_DRIVE_FILE_SCOPE],
    // offline + consent: Google returns a refresh token, also when this account signed in before.
    extraAuthorizationParams: { access_type: 'offline', prompt: 'consent' },
  };
}
