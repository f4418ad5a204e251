// The Node and V8 flags the launcher (bam.mjs) starts the CLI with, which depend on the command: a running process
// cannot change them for itself (V8 reads most of them once, at start).

/** Global options that take a value, as src/cli.ts declares them: the word after one is that value, not a command. */
export const GLOBAL_OPTIONS_WITH_VALUE = ['-r', '--repo', '--password-file', '--password-command', '--host', '--limit-upload', '--limit-download'];

/**
 * Commands whose JavaScript only drives native work (decryption, decompression, SHA-256, file writes). V8's top tier,
 * TurboFan, cost them more in compiling (and compiling again after deoptimisations, in three isolates) than its
 * faster code saved. Measured on the benchmark corpus with TurboFan left out (`--max-opt=2`: Maglev is the top
 * tier): restore, 10 alternated runs, median wall time 6.07 → 5.69 s and CPU 11.5 → 10.7 s; `verify --read-data`,
 * 4 runs, 5.26 → 4.93 s. A backup is the opposite: its chunker is a tight JavaScript loop, and a first backup took
 * 12.8 → 15.4 s without TurboFan, so every other command keeps V8's defaults.
 */
export const NATIVE_BOUND_COMMANDS = ['restore', 'verify', 'test-recovery'];

/** The command word of a `bam` argument list (the first word that is neither an option nor an option's value). */
export function commandOf(args) {
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === '--') return undefined;
    if (GLOBAL_OPTIONS_WITH_VALUE.includes(arg)) {
      i++;
      continue;
    }
    if (arg.startsWith('-')) continue;
    return arg;
  }
  return undefined;
}

/** The flags for the child Node that runs `bam` with these arguments (see bam.mjs for the memory flags). */
export function nodeFlagsFor(args) {
  const flags = ['--max-semi-space-size=2', '--expose-gc'];
  if (NATIVE_BOUND_COMMANDS.includes(commandOf(args))) flags.push('--max-opt=2');
  return flags;
}
