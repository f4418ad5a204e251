// The core's Backend conformance suite, run on GdriveBackend against the Drive fake with the real SDK. Small list
// pages make every listing and lookup page through nextPageToken; the 20 MiB file goes through a resumable session.

import { describeBackendConformance } from '@backup-manager/core-archive/testing';
import { startHarness } from '../test/harness.ts';

describeBackendConformance(
  'GdriveBackend on the Google Drive fake',
  async () => {
    const h = await startHarness({ fake: { pageSizeMax: 40 } });
    return { backend: h.backend, cleanup: () => h.fake.close() };
  },
  { supportsUsage: true },
);
