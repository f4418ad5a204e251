/**
 * `bam snapshots`: the snapshots in the repository, oldest first, optionally filtered by host, path and tag.
 */
import { matchesFilter, shortId } from '@backup-manager/core-archive';
import { formatBytes, formatTime, table } from '../format.ts';
import type { Runtime } from '../runtime.ts';

export interface SnapshotsFlags {
  host?: string;
  path?: string[];
  tag?: string[];
  latest?: string;
}

export async function snapshotsCommand(rt: Runtime, flags: SnapshotsFlags): Promise<number> {
  const repo = await rt.openRepository();
  try {
    let list = (await repo.listSnapshots()).filter((s) =>
      matchesFilter(s.snapshot, {
        // `--host` is also a global option, which commander gives the value to: accept it from either place.
        ...((flags.host ?? rt.options.host) !== undefined ? { hostname: (flags.host ?? rt.options.host)! } : {}),
        ...(flags.tag ? { tags: flags.tag.flatMap((t) => t.split(',')) } : {}),
      }) && (!flags.path || flags.path.every((p) => s.snapshot.paths.includes(p))),
    );
    if (flags.latest !== undefined) list = list.slice(-Math.max(0, Number.parseInt(flags.latest, 10) || 0));
    if (rt.json) {
      rt.printJson(list.map(({ id, snapshot }) => ({ id, short_id: shortId(id), ...snapshot })));
      return 0;
    }
    rt.print(
      table(
        ['ID', 'Time', 'Host', 'Type', 'Tags', 'Size', 'Paths'],
        list.map(({ id, snapshot: s }) => [shortId(id), formatTime(s.time), s.hostname, s.type, s.tags.join(','), formatBytes(s.summary.totalBytes), s.paths.join(', ')]),
      ) + `\n${list.length} snapshot${list.length === 1 ? '' : 's'}`,
    );
    return 0;
  } finally {
    repo.close();
  }
}
