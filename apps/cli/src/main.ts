/**
 * Process entry of `bam`: wires runCli to the real process, turns the first Ctrl-C into a clean stop (locks
 * released, nothing half-written referenced) and a second one into an immediate exit.
 */
import { runCli } from './cli.ts';

const run = runCli(process.argv.slice(2), process.env, { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin });
let signals = 0;
const onSignal = (): void => {
  signals++;
  if (signals === 1) {
    if (process.stderr.isTTY) process.stderr.write('\ninterrupted: stopping cleanly (press Ctrl-C again to quit at once)\n');
    run.interrupt();
  } else {
    process.exit(130);
  }
};
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);
process.on('SIGHUP', onSignal);
// A closed stdout (bam dump | head) is not an error worth a stack trace.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(0);
});
const code = await run.done;
process.exitCode = code;
// Worker threads and timers are gone by now; exit explicitly so no stray handle keeps the process alive.
setImmediate(() => process.exit(code));
