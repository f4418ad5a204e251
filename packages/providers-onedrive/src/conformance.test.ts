// The core's Backend conformance suite, run on OnedriveBackend against the local OneDrive fake through the real
// Microsoft Graph client: once with the defaults (simple uploads up to 4 MiB, 10 MiB fragments, a 20 MiB large
// file), once with one-unit (320 KiB) fragments, no simple uploads and 7-entry pages, so that every non-empty save
// goes through an upload session and every listing follows @odata.nextLink.
import { describeBackendConformance } from '@backup-manager/core-archive/testing';
import { FRAGMENT_UNIT, openOnFake } from '../test/support.ts';

describeBackendConformance(
  'OnedriveBackend (defaults) on the OneDrive fake',
  async () => {
    const { fake, backend } = await openOnFake();
    return { backend, cleanup: () => fake.close() };
  },
  { supportsUsage: true },
);

describeBackendConformance(
  'OnedriveBackend (320 KiB fragments, sessions for every save, 7-entry pages) on the OneDrive fake',
  async () => {
    const { fake, backend } = await openOnFake({ fragmentBytes: FRAGMENT_UNIT, simpleUploadMaxBytes: 0, listPageSize: 7 }, { pageSize: 7 });
    return { backend, cleanup: () => fake.close() };
  },
  { supportsUsage: true, largeFileBytes: 3 * 1024 * 1024 + 17, manyFiles: 120 },
);
