/**
 * @backup-manager/providers-onedrive: the core Backend contract on a OneDrive folder, through the official Microsoft
 * Graph client, with Graph's errors translated into the core's BackupError codes, plus the Microsoft identity
 * platform's settings for the core's OAuthSession.
 */
export {
  DEFAULT_FRAGMENT_BYTES, DEFAULT_LIST_PAGE_SIZE, FRAGMENT_ALIGNMENT_BYTES, MAX_FRAGMENT_BYTES, OnedriveBackend,
  SIMPLE_UPLOAD_MAX_BYTES,
} from './onedrive-backend.ts';
export type { OnedriveBackendOptions, OnedriveTokenSource } from './onedrive-backend.ts';
export { translateGraphError } from './errors.ts';
export type { GraphErrorContext, GraphOperation } from './errors.ts';
export { DEFAULT_GRAPH_BASE_URL } from './graph-client.ts';
export type { GraphFetch } from './graph-client.ts';
export { MAX_DRIVE_PATH_CHARS } from './names.ts';
export { DEFAULT_TENANT, ONEDRIVE_SCOPES, onedriveOAuthConfig } from './oauth.ts';
export type { OnedriveOAuthOptions } from './oauth.ts';
