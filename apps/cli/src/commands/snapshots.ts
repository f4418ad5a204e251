/**
 * `bam snapshots`: the snapshots in the repository, oldest first, optionally filtered by host, path and tag.
 */
import { BackupError, matchesFilter, shortId } from '@backup-manager/core-archive';
import { formatBytes, formatTime, printable, table } from '../format.ts';
import { EXIT } from '../exit-codes.ts';
import type { Runtime } from '../runtime.ts';

export interface SnapshotsFlags {
  host?: string;
  path?: string[];
  tag?: string[];
  latest?: string;
}

export async function snapshotsCommand(rt: Runtime, flags: SnapshotsFlags): Promise<number> {
  if (flags.latest !== undefined && !/^\d+$/.test(flags.latest.trim())) {
    throw new BackupError('INVALID_ARGUMENT', `--latest ${JSON.stringify(flags.latest)} is not a count: give a whole number, e.g. --latest 5`);
  }
  const repo = await rt.openRepository();
  try {
    let damaged = 0;
    const onDamaged = (id: string, e: Error): void => {
      damaged++;
      rt.streams.stderr.write(`warning: snapshot ${id.slice(0, 12)} cannot be read (left out): ${e.message}\n`);
    };
    let list = (await repo.listSnapshots({ onDamaged })).filter((s) =>
      matchesFilter(s.snapshot, {
        // `--host` is also a global option, which commander gives the value to: accept it from either place.
        ...((flags.host ?? rt.options.host) !== undefined ? { hostname: (flags.host ?? rt.options.host)! } : {}),
        ...(flags.tag ? { tags: flags.tag.flatMap((t) => t.split(',')) } : {}),
      }) && (!flags.path || flags.path.every((p) => s.snapshot.paths.includes(p))),
    );
    if (flags.latest !== undefined) list = list.slice(-Math.max(0, Number.parseInt(flags.latest, 10) || 0));
    if (rt.json) {
      rt.printJson(list.map(({ id, snapshot }) => ({ id, short_id: shortId(id), ...snapshot })));
      return damaged > 0 ? EXIT.partial : EXIT.ok;
    }
    rt.print(
      table(
        ['ID', 'Time', 'Host', 'Type', 'Tags', 'Size', 'Paths'],
        list.map(({ id, snapshot: s }) => [shortId(id), formatTime(s.time), s.hostname, s.type, s.tags.join(','), formatBytes(s.summary.totalBytes), printable(s.paths.join(', '))]),
      ) + `\n${list.length} snapshot${list.length === 1 ? '' : 's'}`,
    );
    // A listing that had to leave a damaged snapshot out is incomplete: say so in the exit code, not only on stderr.
    return damaged > 0 ? EXIT.partial : EXIT.ok;
  } finally {
    repo.close();
  }
}
