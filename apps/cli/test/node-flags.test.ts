// The launcher's flags by command (bin/node-flags.mjs): it finds the command word past the global options, and its
// list of global options that take a value is the CLI's own.
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
// @ts-expect-error: a plain JavaScript module of the launcher, without type declarations
import { commandOf, GLOBAL_OPTIONS_WITH_VALUE, nodeFlagsFor } from '../bin/node-flags.mjs';
import { runCli } from '../src/cli.ts';

const flagsFor = nodeFlagsFor as (args: string[]) => string[];
const command = commandOf as (args: string[]) => string | undefined;

/** `bam --help`, as the CLI prints it. */
async function globalHelp(): Promise<string> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  stdout.on('data', (b: Buffer) => (out += b.toString()));
  stderr.resume();
  await runCli(['--help'], { PATH: process.env.PATH ?? '' }, { stdin: new PassThrough(), stdout, stderr }).done;
  return out;
}

describe('launcher flags', () => {
  it('finds the command past global options and their values', () => {
    expect(command(['restore', 'latest', '--target', '/tmp/x'])).toBe('restore');
    expect(command(['--repo', 'restore', '--json', 'backup', 'restore'])).toBe('backup');
    expect(command(['-r', '/repos/a', '--password-file', 'verify', 'verify', '--read-data'])).toBe('verify');
    expect(command(['--repo=/repos/a', '-q', 'test-recovery'])).toBe('test-recovery');
    expect(command(['--json'])).toBeUndefined();
    expect(command([])).toBeUndefined();
  });

  it('leaves TurboFan out only for the commands measured to gain from it', () => {
    expect(flagsFor(['--repo', '/r', 'restore', 'latest', '--target', '/t'])).toContain('--max-opt=2');
    expect(flagsFor(['verify', '--read-data'])).toContain('--max-opt=2');
    expect(flagsFor(['test-recovery'])).toContain('--max-opt=2');
    // A backup chunks in JavaScript: it keeps V8's top tier. So does a path that happens to be named like a command.
    expect(flagsFor(['backup', '/home/me/restore'])).not.toContain('--max-opt=2');
    expect(flagsFor(['--repo', 'restore', 'backup', '/data'])).not.toContain('--max-opt=2');
    // Every command keeps the memory flags.
    for (const args of [['backup', '/data'], ['restore', 'latest'], []]) expect(flagsFor(args)).toEqual(expect.arrayContaining(['--max-semi-space-size=2', '--expose-gc']));
  });

  it('knows every global option that takes a value', async () => {
    const help = await globalHelp();
    const options = help.slice(help.indexOf('Options:'), help.indexOf('Commands:'));
    // `-r, --repo <location>` gives -r and --repo; `--json` takes no value.
    const withValue = [...options.matchAll(/^\s+((?:-\w, )?--[\w-]+) <[^>]+>/gm)].flatMap((m) => m[1]!.split(', '));
    expect(withValue.length).toBeGreaterThan(3);
    expect([...(GLOBAL_OPTIONS_WITH_VALUE as string[])].sort()).toEqual(withValue.sort());
  });
});
