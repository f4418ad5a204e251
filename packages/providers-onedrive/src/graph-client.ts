/**
 * The Microsoft Graph client this provider talks through: the SDK's own middleware for authentication, redirects
 * (`/content` answers 302 to a download URL) and telemetry, but not its RetryHandler, because repeating requests is
 * the core RetryBackend's job. The last hop is a fetch that tests may replace, and a failed connection leaves it as
 * a GraphClientError that keeps the network error, so that the error translation can recognise it.
 */

import {
  AuthenticationHandler,
  AuthenticationHandlerOptions,
  Client,
  GraphClientError,
  RedirectHandler,
  RedirectHandlerOptions,
  TelemetryHandler,
} from '@microsoft/microsoft-graph-client';
import type { Context, GraphRequest, Middleware } from '@microsoft/microsoft-graph-client';
import { BackupError } from '@backup-manager/core-archive';

export const DEFAULT_GRAPH_BASE_URL = 'https://graph.microsoft.com/';

/** Where a request's bytes go: the global fetch, or a replacement with the same signature. */
export type GraphFetch = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

/** The errors FetchHandler threw because a request got no answer. */
const transportFailures = new WeakSet<object>();

/**
 * The error for a request that got no answer (connection refused, reset or timed out), with fetch's error in
 * `customError`. The SDK would turn fetch's error into a GraphError without its cause; a GraphClientError passes
 * through the SDK unchanged.
 */
export function transportFailure(cause: unknown): GraphClientError {
  const failure = new GraphClientError(`the request to OneDrive got no answer: ${cause instanceof Error ? cause.message : String(cause)}`);
  failure.customError = cause;
  transportFailures.add(failure);
  return failure;
}

/** True for an error made by `transportFailure`. */
export function isTransportFailure(e: unknown): boolean {
  return typeof e === 'object' && e !== null && transportFailures.has(e);
}

/** The terminal middleware: sends the request with `fetch` (the SDK's HTTPMessageHandler, with the fetch injectable). */
class FetchHandler implements Middleware {
  readonly #fetch: GraphFetch;

  constructor(fetchImpl: GraphFetch) {
    this.#fetch = fetchImpl;
  }

  async execute(context: Context): Promise<void> {
    try {
      context.response = await this.#fetch(context.request, context.options as RequestInit);
    } catch (e) {
      // fetch rejects with "fetch failed" for every network failure, and with a TimeoutError when a signal expires;
      // anything else (an unparsable URL, say) is a bug and stays as it is.
      const noAnswer = (e instanceof TypeError && e.message === 'fetch failed') || (e instanceof Error && e.name === 'TimeoutError');
      throw noAnswer ? transportFailure(e) : e;
    }
  }

  setNext(): void {
    // Terminal: nothing runs after the network hop.
  }
}

/** The authentication provider used when a request names none: it must never be reached. */
const NO_TOKEN = {
  getAccessToken: (): Promise<string> =>
    Promise.reject(new BackupError('INTERNAL', 'a Graph request was sent without an access token; this is a bug, please report it')),
};

export interface GraphClientOptions {
  /** Graph's origin, e.g. `https://graph.microsoft.com/` (default) or a national cloud's. */
  readonly baseUrl?: string;
  readonly fetch?: GraphFetch;
}

/** Checks and normalises a Graph base URL: https (the SDK recognises absolute URLs by it), origin only, ending in "/". */
export function normalizeGraphBaseUrl(value: string | undefined): string {
  if (value === undefined) return DEFAULT_GRAPH_BASE_URL;
  let url: URL | undefined;
  try {
    url = new URL(value);
  } catch {
    url = undefined;
  }
  if (url === undefined || url.protocol !== 'https:' || (url.pathname !== '/' && url.pathname !== '') || url.search !== '' || url.username !== '') {
    throw new BackupError('INVALID_ARGUMENT', `graphBaseUrl ${JSON.stringify(value)} is not usable: give the https origin of Microsoft Graph, such as https://graph.microsoft.com/ (without a version or path)`);
  }
  return `${url.origin}/`;
}

export function createGraphClient(options: GraphClientOptions = {}): Client {
  const baseUrl = normalizeGraphBaseUrl(options.baseUrl);
  const authentication = new AuthenticationHandler(NO_TOKEN);
  const redirect = new RedirectHandler(new RedirectHandlerOptions());
  const telemetry = new TelemetryHandler();
  authentication.setNext(redirect);
  redirect.setNext(telemetry);
  telemetry.setNext(new FetchHandler(options.fetch ?? ((input, init) => fetch(input, init))));
  return Client.initWithMiddleware({
    middleware: authentication,
    baseUrl,
    defaultVersion: 'v1.0',
    // The SDK attaches the token only to Graph's own hosts and these; a national cloud or proxy origin is one.
    customHosts: new Set([new URL(baseUrl).hostname.toLowerCase()]),
  });
}

/** `request` with `token` as its bearer token (ignored by the SDK for hosts that are not Graph's, such as upload URLs). */
export function withToken(request: GraphRequest, token: string): GraphRequest {
  return request.middlewareOptions([new AuthenticationHandlerOptions({ getAccessToken: () => Promise.resolve(token) })]);
}
