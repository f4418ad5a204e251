/**
 * The commander definitions (arguments, options, help) of the grouped commands: retention, verification, auth and
 * sync. Each command's implementation is imported only when that command runs, so that starting `bam` does not load
 * the verify, workflows and retention packages for commands that do not use them (issue 3: memory).
 */
import type { Command } from 'commander';
import { ioPriorityOption, niceOption } from '../priority.ts';
import type { AuthFlags } from './auth.ts';
import type { ForgetFlags } from './forget.ts';
import type { PruneFlags } from './prune.ts';
import type { RecoveryFlags } from './recovery.ts';
import type { SyncFlags } from './sync.ts';
import type { VerifyFlags } from './verify.ts';
import type { StartCommand } from './verify-shared.ts';

const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value];

/** Adds `forget` and `prune` to the program. */
export function registerRetentionCommands(program: Command, start: StartCommand): void {
  program
    .command('forget')
    .description('remove snapshots by a retention policy (--keep-* flags, else the config\'s retention), or the snapshots named; --prune also frees their data')
    .argument('[snapshots...]', 'remove exactly these snapshots (ids or unique prefixes) instead of applying a policy')
    .option('--keep-last <n>', 'keep the n newest snapshots (-1: all)')
    .option('--keep-hourly <n>', 'keep the newest snapshot of each of the last n hours that have one')
    .option('--keep-daily <n>', 'keep the newest snapshot of each of the last n days that have one')
    .option('--keep-weekly <n>', 'keep the newest snapshot of each of the last n ISO weeks that have one')
    .option('--keep-monthly <n>', 'keep the newest snapshot of each of the last n months that have one')
    .option('--keep-yearly <n>', 'keep the newest snapshot of each of the last n years that have one')
    .option('--keep-within <duration>', 'keep every snapshot within this duration of the newest (restic syntax: 1y2m3d4h, m = months)')
    .option('--keep-within-hourly <duration>', 'keep hourly snapshots within this duration of the newest')
    .option('--keep-within-daily <duration>', 'keep daily snapshots within this duration of the newest')
    .option('--keep-within-weekly <duration>', 'keep weekly snapshots within this duration of the newest')
    .option('--keep-within-monthly <duration>', 'keep monthly snapshots within this duration of the newest')
    .option('--keep-within-yearly <duration>', 'keep yearly snapshots within this duration of the newest')
    .option('--keep-tag <tags>', 'keep snapshots with these tags (comma-separated = all of them; repeatable = any)', collect)
    .option('--tag <tags>', 'only consider snapshots with these tags (comma-separated = all; repeatable = any)', collect)
    .option('--path <path>', 'only consider snapshots that include this path (repeatable)', collect)
    .option('--group-by <fields>', 'apply the policy to each group of snapshots separately: host, paths, tags, comma-separated, or \'\' (default host,paths)')
    .option('-n, --dry-run', 'only show what would be removed')
    .option('--prune', 'then remove the data no remaining snapshot uses (like `bam prune`)')
    .option('--max-unused <pct>', 'with --prune: repack packs more than this share unused (default 5%)')
    .option('-y, --yes', 'do it without asking (required when there is no terminal)')
    .addOption(niceOption())
    .addOption(ioPriorityOption())
    .addHelpText('after', '\n--host (a global option) limits forget to that host\'s snapshots. An append-only repository refuses forget.')
    .action((snapshots: string[], opts: ForgetFlags, cmd: Command) =>
      start(cmd, async (rt) => (await import('./forget.ts')).forgetCommand(rt, { ...opts, ...(rt.options.host !== undefined ? { host: rt.options.host } : {}) }, snapshots)));

  program
    .command('prune')
    .description('remove data no snapshot uses: delete unused packs, repack mostly unused ones, rewrite the index')
    .option('-n, --dry-run', 'only show what would be done')
    .option('--max-unused <pct>', 'repack packs more than this share unused (default 5%; 100% or unlimited: only delete wholly unused packs)')
    .option('-y, --yes', 'do it without asking (required when there is no terminal)')
    .addOption(niceOption())
    .addOption(ioPriorityOption())
    .addHelpText('after', '\nAn append-only repository refuses prune.')
    .action((opts: PruneFlags, cmd: Command) => start(cmd, async (rt) => (await import('./prune.ts')).pruneCommand(rt, opts)));
}

export function registerVerifyCommands(program: Command, start: StartCommand): void {
  const verify = program
    .command('verify')
    .description('check the repository: every snapshot resolves, every blob is indexed, every pack header agrees with the index; with --read-data also decrypt and re-hash the data. Exit 0 when healthy, 1 when errors were found')
    .option('--read-data', 'read every pack: decrypt, decompress and re-hash every blob against its id')
    .option('--read-data-subset <subset>', 'read some packs: n/t (packs in bucket n of t, like restic), x% (random packs), or a size such as 500MiB (random packs up to it)')
    .option('--rotate [period]', 'read the next slice of a rotation that reads every pack once per period (days, or a duration like 4w; default: the config\'s verify.rotation_days)')
    .addOption(niceOption())
    .addOption(ioPriorityOption())
    .action((opts: VerifyFlags, cmd: Command) => start(cmd, async (rt) => (await import('./verify.ts')).verifyCommand(rt, opts)));
  verify
    .command('history')
    .description('past verifications, recovery tests and consistency checks; the newest verified snapshot of each source; the last measured restore speed')
    .option('--limit <n>', 'show only the newest n records', '20')
    .action((opts: { limit: string }, cmd: Command) => start(cmd, async (rt) => (await import('./verify.ts')).verifyHistoryCommand(rt, opts)));
  registerRecoveryCommand(program, start);
  registerRepairCommands(program, start);
  registerConsistencyCommand(program, start);
}

export function registerRecoveryCommand(program: Command, start: StartCommand): void {
  program
    .command('test-recovery')
    .description('restore a snapshot into a temporary folder and prove every file came back intact (SHA-256, size, mode, structure); measures restore speed. Exit 0 when all matched, 1 otherwise')
    .argument('[snapshot]', 'snapshot id, prefix or latest', 'latest')
    .option('--sample <percent>', 'restore only a random sample of this percentage of the files, e.g. 10')
    .option('--path <path>', 'restore only this path inside the snapshot (repeatable)', collect)
    .option('-t, --target <dir>', 'restore into this (empty or new) folder and keep it, instead of a temporary one')
    .option('--compare-source', 'also compare the snapshot with its live source: file count and a sample of unchanged files')
    .option('--tolerance <percent>', 'with --compare-source: allowed difference of the file counts', '5')
    .addOption(niceOption())
    .addOption(ioPriorityOption())
    .action((snapshot: string, opts: RecoveryFlags, cmd: Command) => start(cmd, async (rt) => (await import('./recovery.ts')).testRecoveryCommand(rt, snapshot, opts)));
}

export function registerRepairCommands(program: Command, start: StartCommand): void {
  const repair = program.command('repair').description('repair the index or snapshots after damage that `bam verify` reported');
  repair
    .command('index')
    .description('rebuild the index from the pack headers: new index files supersede all old ones (new written first, then old removed)')
    .option('--dry-run', 'show what would be indexed and removed, change nothing')
    .action((opts: { dryRun?: boolean }, cmd: Command) => start(cmd, async (rt) => (await import('./verify-repair.ts')).repairIndexCommand(rt, opts)));
  repair
    .command('snapshots')
    .description('write new snapshots without the files whose data is lost (marked repaired, keeping the originals for `bam forget`)')
    .option('--dry-run', 'show which files would be left out of which snapshots, write nothing')
    .option('--read-data', 'first read all data, and also leave out files whose blobs are damaged (not only missing)')
    .action((opts: { dryRun?: boolean; readData?: boolean }, cmd: Command) => start(cmd, async (rt) => (await import('./verify-repair.ts')).repairSnapshotsCommand(rt, opts)));
}

export function registerConsistencyCommand(program: Command, start: StartCommand): void {
  program
    .command('check-consistency')
    .description('compare the repository with copies of it (mirrors) by file names, sizes and SHA-256; exit 0 when all agree, 1 otherwise')
    .option('--mirror <location>', 'a copy of the repository: a folder or gdrive:…, dropbox:…, onedrive:… (repeatable; default: every other enabled destination)', collect)
    .option('--no-hash', 'compare names and sizes only, without reading the files')
    .addOption(niceOption())
    .addOption(ioPriorityOption())
    .action((opts: { mirror?: string[]; hash: boolean }, cmd: Command) => start(cmd, async (rt) => (await import('./verify-consistency.ts')).checkConsistencyCommand(rt, opts)));
}

export function registerAuthCommand(program: Command, start: StartCommand): void {
  program
    .command('auth')
    .description('sign in to a cloud account (a browser opens an address that is printed) and save the tokens to ~/.backup-manager/<provider>-token.json')
    .argument('<provider>', 'google_drive (or gdrive), dropbox or onedrive')
    .option('--port <port>', 'receive the browser\'s answer on this port of 127.0.0.1 (default: any free port), for apps whose redirect URI names a port')
    .action((provider: string, opts: AuthFlags, cmd: Command) => start(cmd, async (rt) => (await import('./auth.ts')).authCommand(rt, provider, opts)));
}

export function registerSyncCommand(program: Command, start: StartCommand): void {
  program
    .command('sync')
    .description('copy the repository to every other enabled destination in config.json: upload what is missing there, remove what prune removed (except at append-only destinations)')
    .option('--dry-run', 'show what would be uploaded and removed, change nothing')
    .addOption(niceOption())
    .addOption(ioPriorityOption())
    .action((opts: SyncFlags, cmd: Command) => start(cmd, async (rt) => (await import('./sync.ts')).syncCommand(rt, opts)));
}
