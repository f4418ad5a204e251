/**
 * @backup-manager/providers-dropbox: the core Backend contract on a Dropbox folder, through the official `dropbox`
 * SDK, with Dropbox's errors translated into the core's BackupError codes.
 */
export { DropboxBackend } from './dropbox-backend.ts';
export type { DropboxBackendOptions, DropboxFetch, DropboxTokenSource } from './dropbox-backend.ts';
export { translateDropboxError } from './errors.ts';
export type { DropboxErrorContext, DropboxOperation } from './errors.ts';
export { DROPBOX_SCOPES, dropboxOAuthConfig } from './oauth.ts';
export type { DropboxOAuthOptions } from './oauth.ts';
