// Public surface of the Microsoft Graph (OneDrive) fake: the server, its inspectable state, and the helpers that
// point the real Graph SDK (or plain fetch) at it.

export { startOnedriveFake } from './server.ts';
export type { OnedriveFake, OnedriveFakeOptions } from './server.ts';
export type { DriveQuota, OnedriveItem, QuotaState } from './drive-store.ts';
export { FAKE_HOST_HEADER, GraphLoopbackHandler, createLoopbackGraphClient, loopbackFetch, toFakeUrl } from './graph-loopback.ts';
export type { LoopbackGraphClientOptions } from './graph-loopback.ts';
export { quickXorHash } from './quick-xor-hash.ts';
export { FORBIDDEN_NAME_CHARACTERS, MAX_PATH_LENGTH } from './names.ts';
export { FRAGMENT_ALIGNMENT_BYTES, MAX_FRAGMENT_BYTES } from './upload-sessions.ts';
