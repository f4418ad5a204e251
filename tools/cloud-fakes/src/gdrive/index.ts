// The Google Drive v3 fake's public surface.

export { FOLDER_MIME_TYPE, startGdriveFake } from './fake.ts';
export type { CreateFileDirectOptions, GdriveFake, GdriveFakeOptions, GdriveFile, UploadSessionInfo } from './fake.ts';
