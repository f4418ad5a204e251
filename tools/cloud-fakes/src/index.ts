// Loopback fakes of the Google Drive, Dropbox and Microsoft Graph HTTP APIs, with fault injection, so tests can
// drive the real cloud SDKs without touching the internet.

export { FaultInjector } from './common/faults.ts';
export type { FaultAction, FaultRule } from './common/faults.ts';
export { RequestLog, redactHeaders, redactQuery } from './common/log.ts';
export type { RequestLogEntry } from './common/log.ts';
export { resetSocket, sendJson, startHttpFake } from './common/server.ts';
export type { ErrorEnvelope, FakeHandler, FakeRequestContext, FakeServerBase, HttpFakeOptions } from './common/server.ts';
export { TokenAuthority, s256Challenge } from './common/tokens.ts';
export type { IssuedTokens, RefreshedToken, TokenAuthorityOptions } from './common/tokens.ts';
export { startGdriveFake } from './gdrive/index.ts';
export type { GdriveFake, GdriveFakeOptions, GdriveFile } from './gdrive/index.ts';
// The Dropbox and Microsoft Graph fakes keep their explicit export lists in their own index modules.
export * from './dropbox/index.ts';
export * from './onedrive/index.ts';
