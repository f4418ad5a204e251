/**
 * @backup-manager/providers-gdrive: a Google Drive destination for Backup Automation Manager, implementing the
 * core Backend contract on the official @googleapis/drive client, plus Google's OAuth settings for the core's
 * OAuthSession.
 */
export { DEFAULT_UPLOAD_CHUNK_BYTES, GdriveBackend, MULTIPART_MAX_BYTES, UPLOAD_CHUNK_GRANULARITY } from './gdrive-backend.ts';
export type { GdriveBackendOptions } from './gdrive-backend.ts';
export { DriveRequestFailure, translateDriveError } from './errors.ts';
export type { DriveErrorContext, DriveOperation } from './errors.ts';
export {
  GOOGLE_AUTHORIZATION_ENDPOINT, GOOGLE_DRIVE_FILE_SCOPE, GOOGLE_TOKEN_ENDPOINT, googleDriveOAuthConfig,
} from './oauth.ts';
export type { GoogleDriveOAuthOptions } from './oauth.ts';
