// How a test points the official `dropbox` SDK at the fake: the SDK hard-codes https:// hosts, but takes a
// `fetch` option for every call (API, content and OAuth token), so a fetch that rewrites the origin is enough.

export type FetchLike = (url: string, init?: RequestInit) => Promise<Response>;

/**
 * A `fetch` for `new Dropbox({ fetch })` / `new DropboxAuth({ fetch })`: keeps path and query, replaces the origin
 * with the fake's, and tells the fake which production host was meant (x-fake-host) so it can check that content
 * routes went to content.dropboxapi.com and RPC routes to api.dropboxapi.com.
 */
export function dropboxFakeFetch(fakeUrl: string, baseFetch: FetchLike = globalThis.fetch): FetchLike {
  const origin = fakeUrl.replace(/\/+$/, '');
  return (url, init) => {
    const target = new URL(url);
    const headers = new Headers(init?.headers);
    headers.set('x-fake-host', target.host);
    return baseFetch(`${origin}${target.pathname}${target.search}`, { ...init, headers });
  };
}
