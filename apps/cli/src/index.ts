/**
 * @backup-manager/cli as a library: run the `bam` command line in-process (for tests and embedding).
 */
export { runCli } from './cli.ts';
export type { CliRun } from './cli.ts';
export { EXIT, exitCodeFor } from './exit-codes.ts';
export type { GlobalOptions, Streams } from './runtime.ts';
