/**
 * The `bam` command line: parses arguments with commander, builds a Runtime, runs one command, and turns the
 * outcome into a documented exit code. `runCli` takes its argv, environment and streams as arguments so the whole
 * CLI can run in-process in tests.
 */
import { Command, CommanderError, Option } from 'commander';
import { ConfigError, InvalidValueError } from '@backup-manager/config';
import { BackupError, PROGRAM_VERSION, toBackupError } from '@backup-manager/core-archive';
import { registerAuthCommand, registerRetentionCommands, registerSyncCommand, registerVerifyCommands } from './commands/register.ts';
import { EXIT, exitCodeFor } from './exit-codes.ts';
import { applyPriority, chosenPriority, hasPriorityOptions, ioPriorityOption, niceOption } from './priority.ts';
import type { PriorityFlags } from './priority.ts';
import { Runtime } from './runtime.ts';
import type { GlobalOptions, OperationLogEntry, Streams } from './runtime.ts';

const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value];

export interface CliRun {
  /** resolves with the exit code */
  done: Promise<number>;
  /** what Ctrl-C does: asks the running command to stop cleanly */
  interrupt(): void;
}

export function runCli(argv: string[], env: NodeJS.ProcessEnv, streams: Streams): CliRun {
  let runtime: Runtime | undefined;
  let interrupted = false;
  const program = new Command();
  let result: Promise<number> | undefined;

  const start = (cmd: Command, fn: (rt: Runtime) => Promise<number>): void => {
    const rt = new Runtime(cmd.optsWithGlobals<GlobalOptions>(), env, streams);
    runtime = rt;
    if (interrupted) rt.abort.abort();
    const started = Date.now();
    // Every operation leaves a line in backup.log: commands that log their own (with snapshot and counts) do; for
    // the others, and for failures before a command got to log, this records the outcome.
    const logOutcome = (outcome: OperationLogEntry['outcome'], errorCode?: string): void => {
      if (rt.operationsLogged > 0) return;
      rt.logOperation({ operation: commandPath(cmd), ...(rt.resolvedRepository ? { repository: rt.resolvedRepository } : {}), outcome, durationMs: Date.now() - started, ...(errorCode ? { errorCode } : {}) });
    };
    // --nice / --io-priority before the command starts any thread: the worker pool inherits them.
    const priorityFlags = hasPriorityOptions(cmd) ? cmd.opts<PriorityFlags>() : undefined;
    const run = async (): Promise<number> => {
      if (priorityFlags !== undefined) applyPriority(await chosenPriority(rt, priorityFlags), (message) => rt.note(message));
      return fn(rt);
    };
    result = run().then(
      (code) => {
        logOutcome(code === EXIT.ok ? 'success' : code === EXIT.partial ? 'partial' : code === EXIT.interrupted ? 'interrupted' : 'failure');
        return code;
      },
      (e: unknown) => {
        const err = asBackupError(e);
        logOutcome(err.code === 'INTERRUPTED' ? 'interrupted' : 'failure', err.code);
        throw err;
      },
    );
  };

  program
    .name('bam')
    .description('Backup Automation Manager: encrypted, deduplicated, verified backups.\nState lives in ~/.backup-manager (BACKUP_MANAGER_HOME).')
    .version(PROGRAM_VERSION, '-V, --version')
    .option('-r, --repo <location>', 'repository: a folder, or gdrive:<folder>, dropbox:/<folder>, onedrive:<folder> (default: $BACKUP_MANAGER_REPO, the config\'s local destination, or ~/.backup-manager/backups)')
    .option('--password-file <file>', 'read the repository password from a file')
    .option('--password-command <command>', 'run a command that prints the repository password')
    .option('--json', 'machine-readable output: JSON documents, JSON lines for progress')
    .option('-q, --quiet', 'print nothing but errors')
    .option('--host <name>', 'host name to record in snapshots and to match parents (default: this machine\'s)')
    .option('--limit-upload <KiB/s>', 'limit uploads to each cloud repository or destination to this rate')
    .option('--limit-download <KiB/s>', 'limit downloads from each cloud repository or destination to this rate')
    .showHelpAfterError('(run `bam --help` or `bam <command> --help` for usage)')
    .exitOverride()
    .configureOutput({
      writeOut: (s) => streams.stdout.write(s),
      writeErr: (s) => streams.stderr.write(s),
    });

  // Each action imports its command's module when it runs, not before: starting `bam` then loads only what that
  // one command uses (issue 3: every command pays for what start-up loads; startup.test.ts checks it).
  program
    .command('init')
    .description('create a repository (and a random password in ~/.backup-manager/password when none is configured)')
    .option('--append-only', 'refuse every delete in this repository (ransomware protection); forget and prune will refuse')
    .option('--pack-size <size>', 'target pack file size, e.g. 16MiB')
    .addOption(new Option('--compression <method>', 'blob compression').choices(['zstd', 'none']))
    .action((opts, cmd: Command) => start(cmd, async (rt) => (await import('./commands/init.ts')).initCommand(rt, opts)));

  program
    .command('backup')
    .description('back up paths (or, with none, every configured source) into new snapshots')
    .argument('[paths...]', 'files and folders to back up')
    .addOption(new Option('--type <type>', 'what is read: full reads everything, incremental/differential trust unchanged files').choices(['full', 'incremental', 'differential']))
    .option('--tag <tag>', 'tag the snapshot (repeatable)', collect)
    .option('--time <time>', 'the snapshot\'s time (ISO 8601), for imports')
    .option('--parent <snapshot>', 'trust this snapshot for unchanged files instead of the automatic choice')
    .option('-e, --exclude <pattern>', 'exclude paths matching a glob (repeatable)', collect)
    .option('--exclude-file <file>', 'read exclude patterns from a file (repeatable)', collect)
    .option('--exclude-if-present <name>', 'skip folders that contain a file of this name (repeatable)', collect)
    .option('--exclude-larger-than <size>', 'skip files larger than this, e.g. 2GiB')
    .option('--stdin', 'back up standard input as one file')
    .option('--stdin-filename <name>', 'the file name standard input gets in the snapshot')
    .addOption(niceOption())
    .addOption(ioPriorityOption())
    .action((paths: string[], opts, cmd: Command) => start(cmd, async (rt) => (await import('./commands/backup.ts')).backupCommand(rt, paths, opts)));

  program
    .command('snapshots')
    .description('list snapshots')
    .option('--host <name>', 'only this host\'s')
    .option('--path <path>', 'only snapshots of this path (repeatable)', collect)
    .option('--tag <tags>', 'only snapshots with these tags (comma-separated; repeatable)', collect)
    .option('--latest <n>', 'only the newest n')
    .action((opts, cmd: Command) => start(cmd, async (rt) => (await import('./commands/snapshots.ts')).snapshotsCommand(rt, opts)));

  program
    .command('ls')
    .description('list the files in a snapshot')
    .argument('<snapshot>', 'snapshot id (or a unique prefix) or latest')
    .argument('[path]', 'a folder or file inside the snapshot')
    .option('-l, --long', 'mode, owner, size and time')
    .option('--no-recursive', 'only the entries directly below the path')
    .action((snapshot: string, p: string | undefined, opts, cmd: Command) => start(cmd, async (rt) => (await import('./commands/ls.ts')).lsCommand(rt, snapshot, p, opts)));

  program
    .command('restore')
    .description('restore a snapshot, or a part of it (SNAPSHOT:PATH), into a folder')
    .argument('<snapshot>', 'snapshot id, prefix or latest, optionally :/path/inside')
    .option('-t, --target <dir>', 'folder to restore into (created if missing)')
    .option('-i, --include <pattern>', 'restore only paths matching (repeatable)', collect)
    .option('-e, --exclude <pattern>', 'leave out paths matching (repeatable)', collect)
    .option('--overwrite', 'replace files that already exist in the target')
    .addOption(niceOption())
    .addOption(ioPriorityOption())
    .action((snapshot: string, opts, cmd: Command) => start(cmd, async (rt) => (await import('./commands/restore.ts')).restoreCommand(rt, snapshot, opts)));

  program
    .command('dump')
    .description('write a file to stdout, or a folder (or the whole snapshot) as a tar stream')
    .argument('<snapshot>', 'snapshot id, prefix or latest')
    .argument('[path]', 'file or folder inside the snapshot (default: all of it)')
    .addOption(new Option('--archive <format>', 'force an archive even for a single file').choices(['tar']))
    .action((snapshot: string, p: string | undefined, opts, cmd: Command) => start(cmd, async (rt) => (await import('./commands/dump.ts')).dumpCommand(rt, snapshot, p, opts)));

  const key = program.command('key').description('manage the passwords (keys) that open the repository');
  key.command('list').description('list keys').action((_o, cmd: Command) => start(cmd, async (rt) => (await import('./commands/key.ts')).keyCommand(rt, 'list', undefined, {})));
  key
    .command('add')
    .description('add another password')
    .option('--new-password-file <file>', 'read the new password from a file (else BACKUP_MANAGER_NEW_PASSWORD or a prompt)')
    .action((opts, cmd: Command) => start(cmd, async (rt) => (await import('./commands/key.ts')).keyCommand(rt, 'add', undefined, opts)));
  key
    .command('remove')
    .description('remove a key (not the one in use)')
    .argument('<id>', 'key id or prefix')
    .action((id: string, _o, cmd: Command) => start(cmd, async (rt) => (await import('./commands/key.ts')).keyCommand(rt, 'remove', id, {})));
  key
    .command('passwd')
    .description('change the password of the key in use')
    .option('--new-password-file <file>', 'read the new password from a file (else BACKUP_MANAGER_NEW_PASSWORD or a prompt)')
    .action((opts, cmd: Command) => start(cmd, async (rt) => (await import('./commands/key.ts')).keyCommand(rt, 'passwd', undefined, opts)));

  program
    .command('unlock')
    .description('remove stale locks (of processes that no longer run)')
    .option('--remove-all', 'also remove locks of running processes (only when you know they are gone)')
    .action((opts, cmd: Command) => start(cmd, async (rt) => (await import('./commands/key.ts')).unlockCommand(rt, opts)));

  registerRetentionCommands(program, start);

  const config = program.command('config').description('the configuration file');
  config
    .command('validate')
    .description('check config.json and show every problem with its path and fix')
    .option('--file <file>', 'another file to check')
    .action((opts, cmd: Command) => start(cmd, async (rt) => (await import('./commands/config.ts')).configValidateCommand(rt, opts)));

  registerVerifyCommands(program, start);

  registerAuthCommand(program, start);
  registerSyncCommand(program, start);

  const done = (async (): Promise<number> => {
    try {
      program.parse(argv, { from: 'user' });
    } catch (e) {
      if (e instanceof CommanderError) {
        return e.exitCode === 0 || e.code === 'commander.helpDisplayed' || e.code === 'commander.version' ? EXIT.ok : EXIT.usage;
      }
      throw e;
    }
    if (!result) {
      program.outputHelp();
      return EXIT.usage;
    }
    try {
      return await result;
    } catch (e) {
      const err = asBackupError(e);
      const rt = runtime;
      if (rt?.json) rt.printJson({ type: 'error', code: err.code, message: err.message, ...(err.subject ? { subject: err.subject } : {}) });
      streams.stderr.write(`bam: ${err.message}${err.code === 'INTERNAL' && err.cause instanceof Error && err.cause.stack ? `\n${err.cause.stack}` : ''}\n`);
      return exitCodeFor(err instanceof BackupError ? err.code : 'INTERNAL');
    }
  })();

  return {
    done,
    interrupt() {
      interrupted = true;
      runtime?.abort.abort();
    },
  };
}

/** `key list` for the command `bam key list`: the name backup.log records. */
function commandPath(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c?.parent; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

/**
 * Errors from outside the engine, as BackupErrors: a bad flag value is a usage error, a file-system error (a
 * password or exclude file that cannot be read, a target that cannot be made) is an IO error with Node's message,
 * which names the file. Only what is left is INTERNAL, the one kind printed with a stack trace.
 */
function asBackupError(e: unknown): BackupError {
  if (e instanceof BackupError) return e;
  if (e instanceof InvalidValueError) return new BackupError('INVALID_ARGUMENT', e.message, { cause: e });
  if (e instanceof ConfigError) return new BackupError(e.code === 'IO' ? 'IO' : 'CONFIG_INVALID', e.message, { cause: e, subject: e.path });
  const errno = e as NodeJS.ErrnoException | null;
  if (errno instanceof Error && typeof errno.code === 'string' && typeof errno.syscall === 'string') {
    return new BackupError('IO', errno.message, { cause: e, ...(errno.path ? { subject: errno.path } : {}) });
  }
  return toBackupError(e);
}
