/**
 * `bam dump SNAPSHOT PATH`: a file's bytes, or a directory (or `/`, the whole snapshot) as a tar stream, to stdout.
 */
import { once } from 'node:events';
import { dump } from '@backup-manager/core-archive';
import type { Runtime } from '../runtime.ts';

export async function dumpCommand(rt: Runtime, ref: string, subpath: string | undefined, flags: { archive?: string }): Promise<number> {
  const repo = await rt.openRepository();
  const out = rt.streams.stdout;
  try {
    await repo.loadIndex({ cache: rt.indexCache });
    const { id } = await repo.findSnapshot(ref);
    await dump(repo, id, subpath ?? '/', async (chunk) => {
      if (!out.write(chunk)) await once(out, 'drain');
    }, { forceTar: flags.archive === 'tar' });
    return 0;
  } finally {
    repo.close();
  }
}
