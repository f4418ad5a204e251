// The Dropbox API v2 fake: start it with startDropboxFake() and point the real `dropbox` SDK at it with
// `new Dropbox({ clientId, refreshToken, fetch: dropboxFakeFetch(fake.url) })`.

export { startDropboxFake, DEFAULT_QUOTA_BYTES, DEFAULT_TOKEN_TTL_SECONDS } from './server.ts';
export type { DropboxFake, DropboxFakeOptions, DropboxRateLimitRule } from './server.ts';
export { dropboxFakeFetch } from './client.ts';
export type { FetchLike } from './client.ts';
export { dropboxContentHash } from './content-hash.ts';
export type { DropboxFileRecord, DropboxFolderRecord } from './store.ts';
export type { UploadSession } from './sessions.ts';
export type { RateLimitReason } from './replies.ts';
