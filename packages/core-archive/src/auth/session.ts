/**
 * An OAuth session for one provider account: hands out a current access token, refreshes it shortly before it
 * expires or after the service rejected it, and persists every refresh in its TokenStore. Sessions and processes
 * sharing a store coordinate through it, so a token another one just refreshed is used instead of refreshed again.
 */

import { BackupError } from '../errors.ts';
import { reauthHint, requestTokens } from './token-endpoint.ts';
import type { OAuthClientConfig } from './token-endpoint.ts';
import type { OAuthTokens, TokenStore } from './token-store.ts';

export interface OAuthSessionOptions {
  /** Milliseconds since the epoch (default Date.now). */
  now?: () => number;
  fetch?: typeof fetch;
  /** Refresh when the access token expires within this many milliseconds (default 5 minutes). */
  refreshMarginMs?: number;
}

const DEFAULT_REFRESH_MARGIN_MS = 5 * 60_000;

export class OAuthSession {
  readonly provider: string;
  readonly #config: OAuthClientConfig;
  readonly #store: TokenStore;
  readonly #now: () => number;
  readonly #fetch: typeof fetch | undefined;
  readonly #marginMs: number;
  #tokens: OAuthTokens | undefined;
  /** The refresh in flight in this session, shared by every caller that needs it. */
  #refreshing: Promise<OAuthTokens> | undefined;

  constructor(config: OAuthClientConfig, store: TokenStore, options: OAuthSessionOptions = {}) {
    this.provider = config.provider;
    this.#config = config;
    this.#store = store;
    this.#now = options.now ?? Date.now;
    this.#fetch = options.fetch;
    this.#marginMs = options.refreshMarginMs ?? DEFAULT_REFRESH_MARGIN_MS;
  }

  /** A current access token: the stored one, refreshed first when it expires within the margin. */
  async accessToken(): Promise<string> {
    let tokens = this.#tokens ?? (await this.#readStored());
    if (this.#expiring(tokens)) tokens = await this.#refresh(tokens.accessToken);
    return tokens.accessToken;
  }

  /**
   * The service rejected `rejectedToken` (HTTP 401): returns a token to repeat the request with. A different,
   * fresh token already known to this session or stored by another process is used as it is; otherwise the
   * refresh token is redeemed and the result persisted. A refused refresh is UNAUTHORIZED with the re-auth hint.
   */
  async refreshAfterRejection(rejectedToken: string): Promise<string> {
    const known = this.#tokens;
    if (known !== undefined && known.accessToken !== rejectedToken && !this.#expiring(known)) return known.accessToken;
    return (await this.#refresh(rejectedToken)).accessToken;
  }

  #refresh(staleToken: string): Promise<OAuthTokens> {
    if (this.#refreshing !== undefined) return this.#refreshing;
    const run = async (): Promise<OAuthTokens> => {
      const exclusive = this.#store.exclusive?.bind(this.#store) ?? (<T>(fn: () => Promise<T>) => fn());
      return exclusive(async () => {
        // Another session or process may have refreshed while this one waited for the store.
        const stored = await this.#store.read();
        if (stored !== undefined && stored.accessToken !== staleToken && !this.#expiring(stored)) {
          this.#tokens = stored;
          return stored;
        }
        const base = stored ?? this.#tokens;
        if (base?.refreshToken === undefined) {
          throw new BackupError(
            'UNAUTHORIZED',
            `the ${this.provider} sign-in has expired and no refresh token is saved; ${reauthHint(this.provider)}`,
          );
        }
        const fresh = await requestTokens(
          this.#config,
          { grant_type: 'refresh_token', refresh_token: base.refreshToken },
          { now: this.#now, ...(this.#fetch === undefined ? {} : { fetch: this.#fetch }) },
          base,
        );
        // Kept in memory first: the token works even if persisting it fails, which is reported all the same.
        this.#tokens = fresh;
        await this.#store.write(fresh);
        return fresh;
      });
    };
    const refreshing = run().finally(() => {
      if (this.#refreshing === refreshing) this.#refreshing = undefined;
    });
    this.#refreshing = refreshing;
    return refreshing;
  }

  async #readStored(): Promise<OAuthTokens> {
    const stored = await this.#store.read();
    if (stored === undefined) {
      throw new BackupError('UNAUTHORIZED', `not signed in to ${this.provider}: run \`bam auth ${this.provider}\` first`);
    }
    this.#tokens = stored;
    return stored;
  }

  #expiring(tokens: OAuthTokens): boolean {
    return tokens.accessToken === '' || (tokens.expiresAt !== undefined && tokens.expiresAt - this.#now() <= this.#marginMs);
  }
}
