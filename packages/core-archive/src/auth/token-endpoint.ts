/**
 * The OAuth 2.0 token endpoint (RFC 6749 §3.2), shared by the refresh and the authorization-code grants of every
 * cloud provider: one POST, and one place where its answers become tokens or BackupErrors. Neither a token nor the
 * service's free-text error description ever reaches a message, because either could echo a credential.
 */

import { BackupError } from '../errors.ts';
import type { OAuthTokens } from './token-store.ts';

/** How to talk to one provider's OAuth service. Endpoints are configurable so that tests can use local fakes. */
export interface OAuthClientConfig {
  /** The destination type, e.g. 'google_drive', 'dropbox', 'onedrive': used in messages (`bam auth <provider>`). */
  provider: string;
  clientId: string;
  /** Absent for public clients that rely on PKCE alone. */
  clientSecret?: string;
  authorizationEndpoint: string;
  tokenEndpoint: string;
  scopes: string[];
  /** Added to the authorization URL, e.g. Google's `access_type=offline`, Dropbox's `token_access_type=offline`. */
  extraAuthorizationParams?: Record<string, string>;
}

export interface TokenRequestOptions {
  fetch?: typeof fetch;
  now?: () => number;
  /** Give up on an unresponsive endpoint after this long (default 30 s). */
  timeoutMs?: number;
  signal?: AbortSignal;
}

const DEFAULT_TIMEOUT_MS = 30_000;
/** OAuth error codes (RFC 6749 §5.2 and common extensions) that may be named in a message; anything else is not. */
const KNOWN_OAUTH_ERRORS = new Set([
  'invalid_request', 'invalid_client', 'invalid_grant', 'unauthorized_client', 'unsupported_grant_type',
  'invalid_scope', 'access_denied', 'consent_required', 'interaction_required', 'expired_token',
]);

/** The command that signs in again, as every UNAUTHORIZED message shows it. */
export function reauthHint(provider: string): string {
  return `run \`bam auth ${provider}\` again`;
}

/**
 * POSTs a grant to the token endpoint and returns the tokens. A refused grant is UNAUTHORIZED (with the re-auth
 * hint), 429 is RATE_LIMITED (with Retry-After), 5xx, timeouts and network failures are UNAVAILABLE.
 * `previous` supplies what a refresh answer may leave out (the refresh token, the scope).
 */
export async function requestTokens(
  config: OAuthClientConfig,
  grant: Record<string, string>,
  options: TokenRequestOptions = {},
  previous?: OAuthTokens,
): Promise<OAuthTokens> {
  const doFetch = options.fetch ?? globalThis.fetch;
  const now = options.now ?? Date.now;
  const form = new URLSearchParams({ ...grant, client_id: config.clientId });
  if (config.clientSecret !== undefined) form.set('client_secret', config.clientSecret);
  const timeout = AbortSignal.timeout(options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  const signal = options.signal === undefined ? timeout : AbortSignal.any([options.signal, timeout]);
  const endpoint = describeEndpoint(config.tokenEndpoint);
  const startedAt = now();

  let response: Response;
  let body: unknown;
  try {
    response = await doFetch(config.tokenEndpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: form.toString(),
      signal,
    });
    const text = await response.text();
    body = parseJson(text);
  } catch (e) {
    if (options.signal?.aborted === true) {
      throw new BackupError('INTERRUPTED', `signing in to ${config.provider} was interrupted`, { cause: sanitized(e) });
    }
    throw new BackupError(
      'UNAVAILABLE',
      `cannot reach the ${config.provider} sign-in service at ${endpoint} (${networkReason(e)}); check the network connection and try again`,
      { cause: sanitized(e) },
    );
  }

  const fields = typeof body === 'object' && body !== null ? (body as Record<string, unknown>) : {};
  if (response.ok && typeof fields['access_token'] === 'string' && fields['access_token'] !== '') {
    return tokensFrom(fields, startedAt, previous);
  }
  const oauthError = typeof fields['error'] === 'string' && KNOWN_OAUTH_ERRORS.has(fields['error']) ? fields['error'] : undefined;
  const status = response.status;
  const cause = new Error(`token endpoint answered HTTP ${status}${oauthError === undefined ? '' : ` (${oauthError})`}`);
  if (status === 429) {
    const retryAfterMs = parseRetryAfter(response.headers.get('retry-after'), now);
    throw new BackupError('RATE_LIMITED', `the ${config.provider} sign-in service asks us to slow down (HTTP 429); try again later`, {
      cause,
      ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
    });
  }
  if (status >= 500 || status === 408) {
    throw new BackupError('UNAVAILABLE', `the ${config.provider} sign-in service at ${endpoint} is unavailable (HTTP ${status}); try again later`, { cause });
  }
  if (response.ok) {
    throw new BackupError('UNAUTHORIZED', `the ${config.provider} sign-in service answered without an access token; ${reauthHint(config.provider)}`, { cause });
  }
  if (oauthError === 'invalid_client' || oauthError === 'unauthorized_client') {
    throw new BackupError(
      'UNAUTHORIZED',
      `the ${config.provider} sign-in service does not accept this app's client id or secret (${oauthError}); check the OAuth client in the configuration, then ${reauthHint(config.provider)}`,
      { cause },
    );
  }
  const why = oauthError === 'invalid_grant' ? 'the saved sign-in has expired or was revoked' : 'the sign-in was refused';
  throw new BackupError('UNAUTHORIZED', `${config.provider}: ${why} (${oauthError ?? `HTTP ${status}`}); ${reauthHint(config.provider)}`, { cause });
}

function tokensFrom(fields: Record<string, unknown>, startedAt: number, previous: OAuthTokens | undefined): OAuthTokens {
  const expiresIn = Number(fields['expires_in']);
  const refreshToken = typeof fields['refresh_token'] === 'string' ? fields['refresh_token'] : previous?.refreshToken;
  const scope = typeof fields['scope'] === 'string' ? fields['scope'] : previous?.scope;
  const tokenType = typeof fields['token_type'] === 'string' ? fields['token_type'] : previous?.tokenType;
  return {
    accessToken: fields['access_token'] as string,
    ...(refreshToken === undefined ? {} : { refreshToken }),
    // Measured from when the request was sent, so that a slow answer never makes a token look fresher than it is.
    ...(Number.isFinite(expiresIn) && expiresIn > 0 ? { expiresAt: startedAt + expiresIn * 1000 } : {}),
    ...(scope === undefined ? {} : { scope }),
    ...(tokenType === undefined ? {} : { tokenType }),
  };
}

/** Retry-After in seconds or as an HTTP date, in milliseconds from now; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | null | undefined, now: () => number = Date.now): number | undefined {
  if (value === null || value === undefined || value.trim() === '') return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now());
}

/** Scheme, host and path of an endpoint, without a query string (which could carry a credential). */
export function describeEndpoint(url: string): string {
  try {
    const u = new URL(url);
    return `${u.origin}${u.pathname}`;
  } catch {
    return 'the configured endpoint';
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** A short, credential-free reason for a failed fetch: the system error code or the error's name. */
function networkReason(e: unknown): string {
  const cause = (e as { cause?: { code?: unknown } } | undefined)?.cause;
  if (typeof cause?.code === 'string') return cause.code;
  if (e instanceof Error && (e.name === 'TimeoutError' || e.name === 'AbortError')) return 'timed out';
  return e instanceof Error ? e.name : 'network error';
}

/** A stand-in for a fetch failure that keeps its kind and nothing that could hold the request body. */
function sanitized(e: unknown): Error {
  const out = new Error(`token request failed: ${networkReason(e)}`);
  out.name = 'TokenRequestError';
  return out;
}
