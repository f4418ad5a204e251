// Dropbox's OAuth2 endpoints: /oauth2/authorize (auto-approves and redirects to a loopback redirect_uri with
// code & state, or the implicit-grant fragment) and /oauth2/token (refresh_token and authorization_code grants,
// PKCE S256/plain), answering with Dropbox's token JSON or RFC 6749 error bodies.
import type { IncomingMessage } from 'node:http';
import type { TokenAuthority } from '../common/tokens.ts';
import { jsonReply, textReply } from './replies.ts';
import type { DropboxReply } from './replies.ts';
import type { DropboxAccount } from './routes.ts';

export interface OAuthState {
  readonly tokens: TokenAuthority;
  readonly account: DropboxAccount;
  /** token_access_type requested at /oauth2/authorize, per auth code. */
  readonly accessTypeByCode: Map<string, string>;
}

const ACCESS_TYPES = new Set(['legacy', 'offline', 'online']);

function oauthError(error: string, description: string): DropboxReply {
  return jsonReply(400, { error, error_description: description });
}

/** Loopback redirect URIs only: the fake auto-approves, so it must never send a code anywhere else. */
function isLoopbackRedirect(raw: string): boolean {
  try {
    const url = new URL(raw);
    return (url.protocol === 'http:' || url.protocol === 'https:') && ['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname);
  } catch {
    return false;
  }
}

function appendToRedirect(redirectUri: string, params: Record<string, string>, asFragment: boolean): string {
  const encoded = new URLSearchParams(params).toString();
  if (asFragment) return `${redirectUri}#${encoded}`;
  return `${redirectUri}${redirectUri.includes('?') ? '&' : '?'}${encoded}`;
}

/** GET /oauth2/authorize: the user "clicks Allow" at once. */
export function authorize(state: OAuthState, url: URL): DropboxReply {
  const q = url.searchParams;
  const clientId = q.get('client_id');
  const responseType = q.get('response_type');
  const redirectUri = q.get('redirect_uri');
  const stateParam = q.get('state');
  const accessType = q.get('token_access_type');
  const challenge = q.get('code_challenge');
  const challengeMethod = q.get('code_challenge_method') ?? 'plain';
  if (!clientId) return textReply(400, 'Invalid client_id: missing');
  if (responseType !== 'code' && responseType !== 'token') return textReply(400, `Invalid response_type: "${responseType ?? ''}"`);
  if (accessType !== null && !ACCESS_TYPES.has(accessType)) return textReply(400, `Invalid token_access_type: "${accessType}"`);
  if (redirectUri !== null && !isLoopbackRedirect(redirectUri)) {
    return textReply(400, 'Invalid redirect_uri. The fake only redirects to loopback addresses.');
  }
  if (challenge !== null && challengeMethod !== 'S256' && challengeMethod !== 'plain') {
    return textReply(400, `Invalid code_challenge_method: "${challengeMethod}"`);
  }
  const extra: Record<string, string> = stateParam === null ? {} : { state: stateParam };

  if (responseType === 'token') {
    if (redirectUri === null) return textReply(400, 'redirect_uri is required for response_type=token');
    const issued = state.tokens.issue();
    const location = appendToRedirect(
      redirectUri,
      {
        access_token: issued.access_token,
        token_type: 'bearer',
        expires_in: String(issued.expires_in),
        uid: state.account.uid,
        account_id: state.account.account_id,
        ...extra,
      },
      true,
    );
    return { status: 302, headers: { location }, body: '' };
  }

  const code = state.tokens.createAuthCode({
    clientId,
    redirectUri: redirectUri ?? '',
    ...(challenge === null ? {} : { codeChallenge: challenge, codeChallengeMethod: challengeMethod === 'S256' ? 'S256' : 'plain' }),
  });
  state.accessTypeByCode.set(code, accessType ?? 'online');
  if (redirectUri === null) {
    // Without a redirect URI Dropbox shows the code for the user to paste into the app.
    return textReply(200, code);
  }
  return { status: 302, headers: { location: appendToRedirect(redirectUri, { code, ...extra }, false) }, body: '' };
}

/** The grant parameters: query string (what the SDK sends) merged with a form body, plus HTTP Basic client auth. */
function tokenParams(req: IncomingMessage, url: URL, body: Buffer): URLSearchParams {
  const params = new URLSearchParams(url.search);
  const type = (req.headers['content-type'] ?? '').toLowerCase();
  if (type.startsWith('application/x-www-form-urlencoded') && body.length > 0) {
    for (const [name, value] of new URLSearchParams(body.toString('utf8'))) params.set(name, value);
  }
  const auth = req.headers.authorization;
  if (auth?.toLowerCase().startsWith('basic ')) {
    const decoded = Buffer.from(auth.slice(6).trim(), 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon > 0 && !params.has('client_id')) params.set('client_id', decoded.slice(0, colon));
  }
  return params;
}

/** POST /oauth2/token. */
export function token(state: OAuthState, req: IncomingMessage, url: URL, body: Buffer): DropboxReply {
  if ((req.method ?? 'GET').toUpperCase() !== 'POST') return textReply(405, 'Method not allowed; use POST');
  const params = tokenParams(req, url, body);
  const grantType = params.get('grant_type');
  const clientId = params.get('client_id');
  if (grantType === null) return oauthError('invalid_request', 'No grant_type provided');
  if (!clientId) return oauthError('invalid_request', 'No auth function available for given request');

  if (grantType === 'refresh_token') {
    const refreshToken = params.get('refresh_token');
    if (!refreshToken) return oauthError('invalid_request', 'No refresh_token provided');
    const refreshed = state.tokens.refresh(refreshToken);
    if (!refreshed) return oauthError('invalid_grant', 'refresh token is invalid or revoked');
    return jsonReply(200, { access_token: refreshed.access_token, token_type: 'bearer', expires_in: refreshed.expires_in });
  }

  if (grantType === 'authorization_code') {
    const code = params.get('code');
    if (!code) return oauthError('invalid_request', 'No code provided');
    const verifier = params.get('code_verifier');
    const exchanged = state.tokens.exchangeCode({
      code,
      redirectUri: params.get('redirect_uri') ?? '',
      clientId,
      ...(verifier === null ? {} : { codeVerifier: verifier }),
    });
    const accessType = state.accessTypeByCode.get(code) ?? 'online';
    state.accessTypeByCode.delete(code);
    if ('error' in exchanged) {
      const description =
        exchanged.error === 'invalid_grant' ? 'code doesn\'t exist or has expired' : `authorization code rejected (${exchanged.error})`;
      return oauthError(exchanged.error, description);
    }
    return jsonReply(200, {
      access_token: exchanged.access_token,
      token_type: 'bearer',
      expires_in: exchanged.expires_in,
      // Only offline access comes with a refresh token, as at Dropbox.
      ...(accessType === 'offline' ? { refresh_token: exchanged.refresh_token } : {}),
      scope: 'account_info.read files.content.read files.content.write files.metadata.read files.metadata.write',
      uid: state.account.uid,
      account_id: state.account.account_id,
    });
  }

  return oauthError('unsupported_grant_type', `grant_type "${grantType}" is not supported`);
}
