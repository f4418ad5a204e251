// An in-memory OAuth2 token authority shared by the fakes: issues access/refresh tokens, runs the
// authorization-code flow with PKCE, and lets tests expire tokens to exercise the SDKs' refresh paths.

import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

export interface IssuedTokens {
  access_token: string;
  refresh_token: string;
  expires_in: number;
}

export interface RefreshedToken {
  access_token: string;
  expires_in: number;
}

export interface TokenAuthorityOptions {
  /** Lifetime of access tokens; default 3600. Keep it above 300: the SDKs refresh when < 5 min remain. */
  accessTtlSeconds?: number;
  /** Milliseconds since the epoch, like Date.now (the default). */
  now?: () => number;
  /** Lifetime of an authorization code; default 600 s. */
  authCodeTtlSeconds?: number;
}

interface PendingCode {
  clientId: string;
  redirectUri: string;
  codeChallenge: string | undefined;
  codeChallengeMethod: 'S256' | 'plain';
  expiresAt: number;
}

export class TokenAuthority {
  /** Every access token issued, in order, for tests. */
  issued: string[] = [];
  readonly #ttlSeconds: number;
  readonly #codeTtlSeconds: number;
  readonly #now: () => number;
  readonly #accessExpiry = new Map<string, number>();
  readonly #refreshTokens = new Set<string>();
  readonly #codes = new Map<string, PendingCode>();

  constructor(opts?: TokenAuthorityOptions) {
    this.#ttlSeconds = opts?.accessTtlSeconds ?? 3600;
    this.#codeTtlSeconds = opts?.authCodeTtlSeconds ?? 600;
    this.#now = opts?.now ?? Date.now;
    if (!(this.#ttlSeconds > 0)) throw new RangeError('accessTtlSeconds must be positive');
  }

  /** A fresh access + refresh token pair, as if the user had just signed in. */
  issue(): IssuedTokens {
    const refresh_token = `fake-rt-${randomToken()}`;
    this.#refreshTokens.add(refresh_token);
    return { ...this.#newAccessToken(), refresh_token };
  }

  /** A new access token for a known refresh token; undefined when the refresh token is unknown or revoked. */
  refresh(refreshToken: string): RefreshedToken | undefined {
    if (!this.#refreshTokens.has(refreshToken)) return undefined;
    return this.#newAccessToken();
  }

  /** Forgets a refresh token, so the next refresh with it fails (invalid_grant). */
  revokeRefreshToken(refreshToken: string): void {
    this.#refreshTokens.delete(refreshToken);
  }

  /** Auth code for the authorization-code flow; with a codeChallenge the exchange must present its verifier. */
  createAuthCode(opts: {
    codeChallenge?: string;
    codeChallengeMethod?: 'S256' | 'plain';
    redirectUri: string;
    clientId: string;
  }): string {
    const code = `fake-code-${randomToken()}`;
    this.#codes.set(code, {
      clientId: opts.clientId,
      redirectUri: opts.redirectUri,
      codeChallenge: opts.codeChallenge,
      codeChallengeMethod: opts.codeChallengeMethod ?? 'S256',
      expiresAt: this.#now() + this.#codeTtlSeconds * 1000,
    });
    return code;
  }

  /**
   * Redeems an auth code (single use, as OAuth requires). The error strings are the OAuth2 ones
   * (RFC 6749 §5.2), so a fake can put them straight into its token endpoint's answer.
   */
  exchangeCode(opts: {
    code: string;
    codeVerifier?: string;
    redirectUri: string;
    clientId: string;
  }): IssuedTokens | { error: string } {
    const pending = this.#codes.get(opts.code);
    if (pending === undefined) return { error: 'invalid_grant' };
    this.#codes.delete(opts.code);
    if (pending.expiresAt <= this.#now()) return { error: 'invalid_grant' };
    if (pending.clientId !== opts.clientId) return { error: 'invalid_client' };
    if (pending.redirectUri !== opts.redirectUri) return { error: 'invalid_grant' };
    if (pending.codeChallenge !== undefined) {
      if (opts.codeVerifier === undefined) return { error: 'invalid_request' };
      const derived = pending.codeChallengeMethod === 'S256' ? s256Challenge(opts.codeVerifier) : opts.codeVerifier;
      if (!sameText(derived, pending.codeChallenge)) return { error: 'invalid_grant' };
    }
    return this.issue();
  }

  /** True while the access token is known and not expired. */
  isValid(accessToken: string): boolean {
    const expiresAt = this.#accessExpiry.get(accessToken);
    return expiresAt !== undefined && expiresAt > this.#now();
  }

  /** Expires one access token, or every access token issued so far when none is named. */
  expire(accessToken?: string): void {
    const past = this.#now() - 1;
    if (accessToken === undefined) {
      for (const token of this.#accessExpiry.keys()) this.#accessExpiry.set(token, past);
    } else if (this.#accessExpiry.has(accessToken)) {
      this.#accessExpiry.set(accessToken, past);
    }
  }

  #newAccessToken(): RefreshedToken {
    const access_token = `fake-at-${randomToken()}`;
    this.#accessExpiry.set(access_token, this.#now() + this.#ttlSeconds * 1000);
    this.issued.push(access_token);
    return { access_token, expires_in: this.#ttlSeconds };
  }
}

/** The PKCE S256 code challenge of a verifier: base64url(SHA-256(verifier)) without padding (RFC 7636 §4.2). */
export function s256Challenge(codeVerifier: string): string {
  return createHash('sha256').update(codeVerifier, 'ascii').digest('base64url');
}

function randomToken(): string {
  return randomBytes(24).toString('base64url');
}

function sameText(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
