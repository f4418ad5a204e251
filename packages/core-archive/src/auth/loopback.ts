/**
 * Signing in to a cloud provider from a terminal: the OAuth authorization-code flow with PKCE (RFC 7636) and a
 * loopback redirect (RFC 8252 §7.3). A one-shot HTTP server on 127.0.0.1 receives the browser's redirect, checks
 * `state`, redeems the code at the token endpoint and tells the browser it may close the tab.
 */

import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { BackupError } from '../errors.ts';
import { reauthHint, requestTokens } from './token-endpoint.ts';
import type { OAuthClientConfig } from './token-endpoint.ts';
import type { OAuthTokens } from './token-store.ts';

/** A PKCE verifier (43 characters of base64url randomness) and its S256 challenge. */
export function pkcePair(): { verifier: string; challenge: string } {
  const verifier = randomBytes(32).toString('base64url');
  const challenge = createHash('sha256').update(verifier, 'ascii').digest('base64url');
  return { verifier, challenge };
}

export interface LoopbackOptions {
  /** Shows the person the address to open (never contains a secret). */
  print: (message: string) => void;
  /** How long to wait for the browser (default 5 minutes). */
  timeoutMs?: number;
  signal?: AbortSignal;
  fetch?: typeof fetch;
  /** Port on 127.0.0.1 (default: any free port); for providers whose redirect URI must be registered exactly. */
  port?: number;
  /** Milliseconds since the epoch (default Date.now), for the tokens' expiry. */
  now?: () => number;
}

const DEFAULT_TIMEOUT_MS = 5 * 60_000;
const CALLBACK_PATH = '/callback';

/**
 * Runs the whole sign-in and resolves with the tokens. Fails with UNAUTHORIZED when the person refuses, the
 * browser's answer does not carry this sign-in's `state`, the code is not accepted, or nobody answers in time;
 * with INTERRUPTED when `signal` aborts.
 */
export async function authorizeWithLoopback(config: OAuthClientConfig, options: LoopbackOptions): Promise<OAuthTokens> {
  const provider = config.provider;
  if (options.signal?.aborted === true) throw interrupted(provider);
  const { verifier, challenge } = pkcePair();
  const state = randomBytes(24).toString('base64url');
  // node:http costs about 10 MB of memory once loaded: only a sign-in needs it, not every command.
  const { createServer } = await import('node:http');
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e) => reject(
      new BackupError('IO', `cannot listen on 127.0.0.1:${options.port ?? 0} for the sign-in redirect (${errorCode(e)}); choose another port`, { cause: e }),
    ));
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const redirectUri = `http://127.0.0.1:${port}${CALLBACK_PATH}`;
  const authorizationUrl = new URL(config.authorizationEndpoint);
  for (const [k, v] of Object.entries({
    ...config.extraAuthorizationParams,
    response_type: 'code',
    client_id: config.clientId,
    redirect_uri: redirectUri,
    scope: config.scopes.join(' '),
    state,
    code_challenge: challenge,
    code_challenge_method: 'S256',
  })) {
    authorizationUrl.searchParams.set(k, v);
  }

  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  try {
    return await new Promise<OAuthTokens>((resolve, reject) => {
      let finished = false;
      const fail = (e: BackupError) => {
        finished = true;
        reject(e);
      };
      timer = setTimeout(
        () => fail(new BackupError('UNAUTHORIZED', `no answer from the browser within ${Math.round((options.timeoutMs ?? DEFAULT_TIMEOUT_MS) / 1000)} s; ${reauthHint(provider)}`)),
        options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      );
      onAbort = () => fail(interrupted(provider));
      options.signal?.addEventListener('abort', onAbort, { once: true });

      server.on('request', (req: IncomingMessage, res: ServerResponse) => {
        const url = new URL(req.url ?? '/', redirectUri);
        if (req.method !== 'GET' || url.pathname !== CALLBACK_PATH) {
          answer(res, 404, 'Not found', 'This address only receives the sign-in redirect.');
          return;
        }
        if (finished) {
          answer(res, 409, 'Sign-in already finished', 'This sign-in has already finished. Return to the terminal.');
          return;
        }
        const q = url.searchParams;
        if (!sameText(q.get('state') ?? '', state)) {
          answer(res, 400, 'Sign-in refused', 'The answer does not belong to this sign-in. Return to the terminal and start again.');
          fail(new BackupError('UNAUTHORIZED', `the browser's answer did not match this sign-in (state mismatch), so it was refused; ${reauthHint(provider)}`));
          return;
        }
        const error = q.get('error');
        const code = q.get('code');
        if (error !== null || code === null || code === '') {
          answer(res, 400, 'Sign-in not completed', 'Access was not granted. Return to the terminal.');
          const why = error === null ? 'no authorization code came back' : `access was not granted (${/^[a-z_]+$/.test(error) ? error : 'error'})`;
          fail(new BackupError('UNAUTHORIZED', `signing in to ${provider} failed: ${why}; ${reauthHint(provider)}`));
          return;
        }
        finished = true;
        requestTokens(
          config,
          { grant_type: 'authorization_code', code, redirect_uri: redirectUri, code_verifier: verifier },
          {
            ...(options.fetch === undefined ? {} : { fetch: options.fetch }),
            ...(options.now === undefined ? {} : { now: options.now }),
            ...(options.signal === undefined ? {} : { signal: options.signal }),
          },
        ).then(
          (tokens) => answer(res, 200, 'Signed in', `Backup Automation Manager may now use ${provider}. You can close this tab.`, () => resolve(tokens)),
          (e: unknown) => answer(res, 502, 'Sign-in failed', 'The sign-in could not be completed. Return to the terminal for details.', () => reject(e)),
        );
      });

      options.print(
        `To let Backup Automation Manager use ${provider}, open this address in a browser on this computer and allow access:\n\n  ${authorizationUrl.toString()}\n\nWaiting for the browser (this stops in ${Math.round((options.timeoutMs ?? DEFAULT_TIMEOUT_MS) / 1000)} s)…`,
      );
    });
  } finally {
    if (timer !== undefined) clearTimeout(timer);
    if (onAbort !== undefined) options.signal?.removeEventListener('abort', onAbort);
    server.close();
    server.closeAllConnections();
  }
}

/** A small HTML page for the browser; `then` runs once it has been handed to the socket. */
function answer(res: ServerResponse, status: number, title: string, text: string, then?: () => void): void {
  const body = `<!doctype html><html><head><meta charset="utf-8"><title>${title}</title></head><body><h1>${title}</h1><p>${text}</p></body></html>\n`;
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    connection: 'close',
  });
  if (then === undefined) {
    res.end(body);
    return;
  }
  // 'close' as well as the end callback: a browser that already went away must not leave the sign-in hanging.
  let called = false;
  const once = () => {
    if (!called) {
      called = true;
      then();
    }
  };
  res.once('close', once);
  res.end(body, once);
}

function interrupted(provider: string): BackupError {
  return new BackupError('INTERRUPTED', `signing in to ${provider} was interrupted`);
}

function sameText(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function errorCode(e: unknown): string {
  return typeof e === 'object' && e !== null && 'code' in e ? String(e.code) : 'error';
}
