// The Microsoft identity platform endpoints a OneDrive client signs in through
// (login.microsoftonline.com/{tenant}/oauth2/v2.0/authorize and /token): the authorization-code flow with PKCE that
// redirects to a loopback redirect_uri, code redemption, and refresh-token grants, answering errors in the
// platform's `{ error, error_description, error_codes, … }` shape.

import { randomUUID } from 'node:crypto';
import type { TokenAuthority } from '../common/tokens.ts';
import { emptyReply, identityJsonReply, redirectReply } from './replies.ts';
import type { GraphReply } from './replies.ts';

/** /{tenant}/oauth2/v2.0/{authorize|token}; tenant is common, consumers, organizations or a tenant id/domain. */
export const IDENTITY_PATH = /^\/([A-Za-z0-9.-]+)\/oauth2\/v2\.0\/(authorize|token)$/u;

/** Scope the fake grants when the client names none (what a OneDrive backup app asks for). */
const DEFAULT_SCOPE = 'https://graph.microsoft.com/Files.ReadWrite offline_access';

export class IdentityEndpoints {
  readonly #tokens: TokenAuthority;
  readonly #now: () => Date;
  /** Scope requested at /authorize, per auth code, so redemption can decide whether to hand out a refresh token. */
  readonly #scopeByCode = new Map<string, string>();

  constructor(tokens: TokenAuthority, now: () => Date) {
    this.#tokens = tokens;
    this.#now = now;
  }

  authorize(method: string, query: URLSearchParams): GraphReply {
    if (method !== 'GET' && method !== 'POST') return emptyReply(405, { allow: 'GET, POST' });
    const clientId = query.get('client_id');
    const redirectUri = query.get('redirect_uri');
    if (clientId === null || clientId === '') {
      return htmlError(400, "AADSTS900144: The request must contain the 'client_id' parameter.");
    }
    if (redirectUri === null || !isLoopbackRedirect(redirectUri)) {
      // The platform shows an error page instead of redirecting to an unregistered redirect_uri.
      return htmlError(
        400,
        'AADSTS50011: The redirect_uri must be a loopback http URL (http://localhost:PORT/… or http://127.0.0.1:PORT/…) for this fake.',
      );
    }
    const state = query.get('state');
    const back = (params: Record<string, string>): GraphReply => {
      const url = new URL(redirectUri);
      for (const [name, value] of Object.entries(params)) url.searchParams.set(name, value);
      if (state !== null) url.searchParams.set('state', state);
      return redirectReply(url.toString());
    };
    const fail = (error: string, description: string): GraphReply => back({ error, error_description: description });
    if (query.get('response_type') !== 'code') {
      return fail('unsupported_response_type', 'AADSTS700054: only response_type=code is supported by this fake.');
    }
    const challenge = query.get('code_challenge') ?? undefined;
    const methodName = query.get('code_challenge_method') ?? (challenge === undefined ? undefined : 'plain');
    if (methodName !== undefined && methodName !== 'S256' && methodName !== 'plain') {
      return fail('invalid_request', `AADSTS501491: unsupported code_challenge_method "${methodName}".`);
    }
    const code = this.#tokens.createAuthCode({
      redirectUri,
      clientId,
      ...(challenge === undefined ? {} : { codeChallenge: challenge }),
      ...(methodName === 'S256' || methodName === 'plain' ? { codeChallengeMethod: methodName } : {}),
    });
    this.#scopeByCode.set(code, query.get('scope') ?? DEFAULT_SCOPE);
    return back({ code });
  }

  token(method: string, contentType: string | undefined, body: Buffer): GraphReply {
    if (method !== 'POST') return emptyReply(405, { allow: 'POST' });
    if (contentType === undefined || !contentType.toLowerCase().startsWith('application/x-www-form-urlencoded')) {
      return this.#error(400, 'invalid_request', 900144, "The request body must contain the following parameter: 'grant_type'.");
    }
    const form = new URLSearchParams(body.toString('utf8'));
    const grantType = form.get('grant_type');
    const clientId = form.get('client_id');
    if (grantType === null) {
      return this.#error(400, 'invalid_request', 900144, "The request body must contain the following parameter: 'grant_type'.");
    }
    if (clientId === null || clientId === '') {
      return this.#error(400, 'invalid_request', 900144, "The request body must contain the following parameter: 'client_id'.");
    }
    if (grantType === 'refresh_token') {
      const refreshToken = form.get('refresh_token');
      if (refreshToken === null) {
        return this.#error(400, 'invalid_request', 900144, "The request body must contain the following parameter: 'refresh_token'.");
      }
      const refreshed = this.#tokens.refresh(refreshToken);
      if (refreshed === undefined) {
        return this.#error(400, 'invalid_grant', 70000, 'The provided refresh token is not valid or has been revoked; sign in again.');
      }
      const scope = form.get('scope') ?? DEFAULT_SCOPE;
      return identityJsonReply(200, {
        token_type: 'Bearer',
        scope,
        expires_in: refreshed.expires_in,
        ext_expires_in: refreshed.expires_in,
        access_token: refreshed.access_token,
        // The platform returns a refresh token on every refresh; the fake keeps the same one valid.
        refresh_token: refreshToken,
      });
    }
    if (grantType === 'authorization_code') {
      const code = form.get('code');
      const redirectUri = form.get('redirect_uri');
      if (code === null) {
        return this.#error(400, 'invalid_request', 900144, "The request body must contain the following parameter: 'code'.");
      }
      if (redirectUri === null) {
        return this.#error(400, 'invalid_request', 900144, "The request body must contain the following parameter: 'redirect_uri'.");
      }
      const verifier = form.get('code_verifier') ?? undefined;
      const requestedScope = this.#scopeByCode.get(code);
      this.#scopeByCode.delete(code);
      const result = this.#tokens.exchangeCode({
        code,
        redirectUri,
        clientId,
        ...(verifier === undefined ? {} : { codeVerifier: verifier }),
      });
      if ('error' in result) {
        const described = EXCHANGE_ERRORS[result.error] ?? { aadsts: 70000, text: 'The authorization code could not be redeemed.' };
        return this.#error(400, result.error, described.aadsts, described.text);
      }
      const scope = form.get('scope') ?? requestedScope ?? DEFAULT_SCOPE;
      const offline = scope.split(/\s+/u).includes('offline_access');
      return identityJsonReply(200, {
        token_type: 'Bearer',
        scope,
        expires_in: result.expires_in,
        ext_expires_in: result.expires_in,
        access_token: result.access_token,
        // Without offline_access the platform issues no refresh token; a client that forgets it cannot refresh.
        ...(offline ? { refresh_token: result.refresh_token } : {}),
      });
    }
    return this.#error(400, 'unsupported_grant_type', 70003, `The grant type "${grantType}" is not supported by this fake.`);
  }

  #error(status: number, error: string, aadsts: number, text: string): GraphReply {
    const traceId = randomUUID();
    const correlationId = randomUUID();
    const timestamp = `${this.#now().toISOString().slice(0, 19).replace('T', ' ')}Z`;
    return identityJsonReply(status, {
      error,
      error_description: `AADSTS${aadsts}: ${text}\r\nTrace ID: ${traceId}\r\nCorrelation ID: ${correlationId}\r\nTimestamp: ${timestamp}`,
      error_codes: [aadsts],
      timestamp,
      trace_id: traceId,
      correlation_id: correlationId,
      error_uri: `https://login.microsoftonline.com/error?code=${aadsts}`,
    });
  }
}

const EXCHANGE_ERRORS: Readonly<Record<string, { aadsts: number; text: string }>> = {
  invalid_grant: {
    aadsts: 70008,
    text: 'The authorization code is unknown, expired, already redeemed, issued for another redirect_uri, or its code_verifier does not match the code_challenge.',
  },
  invalid_client: { aadsts: 700016, text: 'The authorization code was issued to a different client_id.' },
  invalid_request: { aadsts: 50148, text: 'The code_verifier is required because the authorization request carried a code_challenge.' },
};

function isLoopbackRedirect(uri: string): boolean {
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    return false;
  }
  return url.protocol === 'http:' && ['localhost', '127.0.0.1', '[::1]'].includes(url.hostname);
}

function htmlError(status: number, message: string): GraphReply {
  const escaped = message.replace(/&/gu, '&amp;').replace(/</gu, '&lt;').replace(/>/gu, '&gt;');
  return {
    status,
    headers: { 'content-type': 'text/html; charset=utf-8' },
    body: Buffer.from(`<!DOCTYPE html><html><body><h1>Sign in error</h1><p>${escaped}</p></body></html>`),
  };
}
