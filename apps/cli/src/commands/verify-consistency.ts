/**
 * `bam check-consistency --mirror DIR [--mirror DIR…]`: compares the repository with copies of it at other
 * destinations by file names, sizes and SHA-256 (every file's hash must equal its name; config is compared by hash).
 * It needs no password. Exit 0 when every copy is complete and intact, 1 otherwise.
 */
import fs from 'node:fs';
import path from 'node:path';
import { BackupError, LocalBackend, toBackupError } from '@backup-manager/core-archive';
import type { Backend } from '@backup-manager/core-archive';
import { enabledDestinations, openCloudRepository, parseCloudLocation } from '../destinations.ts';
import { checkConsistency, recordOfConsistency } from '@backup-manager/verify';
import type { ConsistencyReport, DestinationReport, FileRef } from '@backup-manager/verify';
import { EXIT } from '../exit-codes.ts';
import { formatBytes, formatDuration, formatRate } from '../format.ts';
import { ProgressLine } from '../progress.ts';
import type { Runtime } from '../runtime.ts';
import { recordHistory } from './verify-shared.ts';

export async function checkConsistencyCommand(rt: Runtime, flags: { mirror?: string[]; hash: boolean }): Promise<number> {
  const location = await rt.repoLocation();
  // Without --mirror: every other enabled destination of config.json, the copies that sync keeps.
  const given = flags.mirror ?? [];
  const names = given.length > 0 ? given : enabledDestinations(rt, await rt.config()).map((d) => d.location).filter((l) => l !== location);
  if (names.length === 0) {
    throw new BackupError('INVALID_ARGUMENT', 'nothing to compare with: give --mirror LOCATION (a folder, or gdrive:…, dropbox:…, onedrive:…), or enable more than one destination in config.json');
  }
  const mirrors: { name: string; backend: Backend }[] = [];
  for (const name of names) {
    const cloud = parseCloudLocation(name);
    if (cloud) {
      mirrors.push({ name, backend: await openCloudRepository(rt, cloud, { create: false }) });
      continue;
    }
    const dir = path.resolve(name);
    if (!fs.existsSync(path.join(dir, 'config'))) throw new BackupError('INVALID_ARGUMENT', `${dir} does not hold a repository (no config file): give the folder of a copy of the repository`);
    mirrors.push({ name: dir, backend: new LocalBackend(dir) });
  }
  const started = Date.now();
  const startedAt = rt.runContext().now().toISOString();
  const primary = await rt.backend();
  const line = new ProgressLine(rt);
  try {
    const report = await checkConsistency(
      { name: location, backend: primary },
      mirrors,
      {
        hash: flags.hash,
        signal: rt.abort.signal,
        onEvent: (e) => line.update(() => `[${formatDuration(line.elapsed())}] ${e.destination}: ${e.done}/${e.total} files  ${formatBytes(e.bytesRead)}  ${formatRate(e.bytesRead, line.elapsed())}`, () => ({ ...e })),
      },
    );
    line.clear();
    rt.printJson({ type: 'consistency', ...report });
    rt.print(consistencyText(report).join('\n'));
    recordHistory(rt, recordOfConsistency(report, startedAt));
    rt.logOperation({ operation: 'check-consistency', repository: location, outcome: report.consistent ? 'success' : 'partial', durationMs: Date.now() - started, counts: { mirrors: mirrors.length, bytesRead: report.bytesRead } });
    return report.consistent ? EXIT.ok : EXIT.error;
  } catch (e) {
    line.clear();
    const err = toBackupError(e);
    rt.logOperation({ operation: 'check-consistency', repository: location, outcome: err.code === 'INTERRUPTED' ? 'interrupted' : 'failure', durationMs: Date.now() - started, errorCode: err.code });
    throw err;
  } finally {
    await primary.close();
    for (const m of mirrors) await m.backend.close().catch(() => undefined);
  }
}

function refs(kind: string, list: readonly FileRef[]): string[] {
  if (list.length === 0) return [];
  const out = [`  ${kind} (${list.length}):`];
  for (const f of list.slice(0, 20)) out.push(`    ${f.type === 'config' ? 'config' : `${f.type}/${f.name}`} (${f.size} bytes)`);
  if (list.length > 20) out.push(`    … and ${list.length - 20} more (see --json)`);
  return out;
}

function destinationText(d: DestinationReport): string[] {
  const out = [`${d.name}: ${d.consistent ? 'consistent' : 'NOT consistent'} (${d.files} files, ${formatBytes(d.bytes)})`];
  out.push(...refs('missing here', d.missing), ...refs('extra here', d.extra));
  if (d.different.length > 0) {
    out.push(`  different (${d.different.length}):`);
    for (const f of d.different.slice(0, 20)) out.push(`    ${f.message}`);
    if (d.different.length > 20) out.push(`    … and ${d.different.length - 20} more (see --json)`);
  }
  for (const u of d.unreadable) out.push(`  unreadable: ${u.type}/${u.name}: ${u.message}`);
  return out;
}

function consistencyText(r: ConsistencyReport): string[] {
  const lines = [`primary ${r.primary.name}: ${r.primary.files} files, ${formatBytes(r.primary.bytes)}${r.primary.corrupt.length > 0 ? ` — ${r.primary.corrupt.length} DAMAGED` : ''}`];
  for (const c of r.primary.corrupt) lines.push(`  ${c.message}`);
  for (const u of r.primary.unreadable) lines.push(`  unreadable: ${u.type}/${u.name}: ${u.message}`);
  for (const m of r.mirrors) lines.push(...destinationText(m));
  lines.push(`${r.hashed ? `read and hashed ${formatBytes(r.bytesRead)}` : 'compared names and sizes only'} in ${formatDuration(r.durationMs)}: ${r.consistent ? 'all copies agree' : 'the copies differ'}`);
  return lines;
}
