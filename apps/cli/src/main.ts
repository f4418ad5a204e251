/**
 * Process entry of `bam`: wires runCli to the real process, turns the first Ctrl-C into a clean stop (locks
 * released, nothing half-written referenced) and a second one into an immediate exit.
 */
import net from 'node:net';
import { runCli } from './cli.ts';
import { startHeapKeeper } from './heap-keeper.ts';

// bin/bam.mjs passes --expose-gc for this: the heap stays near its live size during long operations.
startHeapKeeper();

// Started by bin/bam.mjs: when the launcher is gone (killed), go too, as abruptly as it went.
const launcherFd = Number(process.env.BAM_LAUNCHER_FD);
delete process.env.BAM_LAUNCHER_FD;
if (Number.isInteger(launcherFd) && launcherFd > 2) {
  try {
    const watch = new net.Socket({ fd: launcherFd, readable: true, writable: false });
    watch.on('close', () => process.kill(process.pid, 'SIGKILL'));
    watch.on('error', () => undefined);
    watch.resume();
    watch.unref();
  } catch {
    // Not a pipe (started some other way): nothing to watch.
  }
}

const run = runCli(process.argv.slice(2), process.env, { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin });
let signals = 0;
let firstSignalAt = 0;
const onSignal = (): void => {
  // The launcher forwards what the terminal also sent us directly: copies within half a second are one interrupt.
  if (signals > 0 && Date.now() - firstSignalAt < 500) return;
  signals++;
  if (signals === 1) {
    firstSignalAt = Date.now();
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
