// Points the real @microsoft/microsoft-graph-client at the OneDrive fake without changing how it builds URLs: the
// client keeps talking https to graph.microsoft.com (so its auth, retry and redirect middleware behave exactly as in
// production) and a terminal middleware replaces the network hop, sending each request to the fake over plain
// http with the host it meant in `x-fake-host`. A matching fetch serves code that calls fetch directly (the
// identity endpoint, fragment PUTs to upload URLs).

import type { Client, Context, Middleware } from '@microsoft/microsoft-graph-client';

/** The header that tells the fake which host the client meant (graph.microsoft.com, login.microsoftonline.com…). */
export const FAKE_HOST_HEADER = 'x-fake-host';

const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
const MAX_REDIRECTS = 5;

/** Where a URL meant for any host lands on the fake: same path and query, the fake's origin. */
export function toFakeUrl(fakeUrl: string, target: string): { url: string; meantHost: string } {
  const parsed = new URL(target);
  return { url: `${fakeUrl.replace(/\/$/u, '')}${parsed.pathname}${parsed.search}`, meantHost: parsed.host };
}

/**
 * A fetch that sends every request to the fake, whatever host the URL names, and follows redirects itself (mapping
 * each Location to the fake too) unless `redirect: 'manual'` is asked for. Use it wherever production code would
 * call the global fetch against login.microsoftonline.com, an uploadUrl or a download URL.
 */
export function loopbackFetch(fakeUrl: string): typeof fetch {
  const loopback = async (input: string | URL | Request, init: RequestInit = {}): Promise<Response> => {
    let target = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    let method = (init.method ?? (input instanceof Request ? input.method : 'GET')).toUpperCase();
    let headers = new Headers(init.headers ?? (input instanceof Request ? input.headers : undefined));
    let body = init.body ?? (input instanceof Request && method !== 'GET' && method !== 'HEAD' ? await input.arrayBuffer() : undefined);
    for (let hop = 0; ; hop += 1) {
      const { url, meantHost } = toFakeUrl(fakeUrl, target);
      headers.set(FAKE_HOST_HEADER, meantHost);
      const response = await fetch(url, {
        ...init,
        method,
        headers,
        ...(body === undefined || body === null ? { body: null } : { body }),
        redirect: 'manual',
      });
      const location = response.headers.get('location');
      if (init.redirect === 'manual' || !REDIRECT_STATUSES.has(response.status) || location === null || hop >= MAX_REDIRECTS) {
        return response;
      }
      await response.body?.cancel();
      const next = new URL(location, target);
      if (next.origin !== new URL(target).origin) {
        headers = new Headers(headers);
        headers.delete('authorization');
      }
      if (response.status === 303 || ((response.status === 301 || response.status === 302) && method === 'POST')) {
        method = 'GET';
        body = undefined;
      }
      target = next.href;
    }
  };
  return loopback as typeof fetch;
}

/**
 * Terminal middleware for the Graph client (in place of HTTPMessageHandler): forwards the request to the fake.
 * Keeps `context.options.headers` a plain object, because the SDK's RedirectHandler deletes Authorization from it.
 */
export class GraphLoopbackHandler implements Middleware {
  readonly #fakeUrl: string;

  constructor(fakeUrl: string) {
    this.#fakeUrl = fakeUrl;
  }

  async execute(context: Context): Promise<void> {
    const target = typeof context.request === 'string' ? context.request : context.request.url;
    const { url, meantHost } = toFakeUrl(this.#fakeUrl, target);
    const options = context.options ?? {};
    const current = options.headers;
    const plain: Record<string, string> =
      current instanceof Headers ? Object.fromEntries(current.entries()) : { ...(current as Record<string, string> | undefined) };
    plain[FAKE_HOST_HEADER] = meantHost;
    options.headers = plain;
    context.options = options;
    context.response = await fetch(url, options as RequestInit);
  }

  setNext(): void {
    // Terminal: nothing runs after the network hop.
  }
}

export interface LoopbackGraphClientOptions {
  /** The fake's origin (`fake.url`). */
  fakeUrl: string;
  /** Called for every Graph request, like a production authProvider; refresh inside it when needed. */
  getAccessToken: () => Promise<string>;
  /** RetryHandler delay in seconds when the answer has no Retry-After (default 0 for fast tests; SDK default 3). */
  retryDelaySeconds?: number;
  /** RetryHandler attempts (SDK default 3). */
  maxRetries?: number;
}

/**
 * A Graph Client with the SDK's default middleware chain (Authentication → Retry → Redirect → Telemetry) ending in
 * GraphLoopbackHandler. The SDK is loaded lazily so the fake itself (and the cloud-fakes bin) never needs it.
 */
export async function createLoopbackGraphClient(options: LoopbackGraphClientOptions): Promise<Client> {
  const sdk = await import('@microsoft/microsoft-graph-client');
  const authentication = new sdk.AuthenticationHandler({ getAccessToken: options.getAccessToken });
  const retry = new sdk.RetryHandler(new sdk.RetryHandlerOptions(options.retryDelaySeconds ?? 0, options.maxRetries ?? 3));
  const redirect = new sdk.RedirectHandler(new sdk.RedirectHandlerOptions());
  const telemetry = new sdk.TelemetryHandler();
  authentication.setNext(retry);
  retry.setNext(redirect);
  redirect.setNext(telemetry);
  telemetry.setNext(new GraphLoopbackHandler(options.fakeUrl));
  return sdk.Client.initWithMiddleware({ middleware: authentication });
}
