// The core's Backend conformance suite, run on DropboxBackend against the local Dropbox fake through the real SDK:
// once with the defaults (8 MiB upload-session chunks, 20 MiB large file), once with tiny chunks and list pages so
// that every save goes through an upload session and every listing through list_folder/continue.
import { describeBackendConformance } from '@backup-manager/core-archive/testing';
import { openOnFake } from '../test/support.ts';

describeBackendConformance(
  'DropboxBackend (defaults) on the Dropbox fake',
  async () => {
    const { fake, backend } = await openOnFake();
    return { backend, cleanup: () => fake.close() };
  },
  { supportsUsage: true },
);

describeBackendConformance(
  'DropboxBackend (64 KiB session chunks, 7-entry list pages) on the Dropbox fake',
  async () => {
    const { fake, backend } = await openOnFake({ sessionChunkBytes: 64 * 1024 }, { listLimit: 7 });
    return { backend, cleanup: () => fake.close() };
  },
  { supportsUsage: true, largeFileBytes: 3 * 1024 * 1024 + 17, manyFiles: 120 },
);
