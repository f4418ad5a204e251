#!/usr/bin/env node
// Launcher for `bam`. It runs on any Node and starts the CLI (dist/main.js) in a child Node >= 22 with the settings
// that keep memory flat during long backups, which a running process cannot set for itself:
// - a small V8 young generation, so short-lived chunk buffers are collected soon;
// - glibc's mmap threshold fixed at 128 KiB, so freed multi-megabyte buffers go back to the system instead of
//   staying in malloc's heap (its dynamic threshold otherwise climbs and keeps them);
// - at most two malloc arenas, so that the worker threads' freed memory is not kept in an arena per thread
//   (measured on a 1.6 GB backup: about 10 MB less at the peak, no CPU cost seen);
// - --expose-gc, for the CLI's heap keeper (src/heap-keeper.ts), which collects whenever the heap has grown by a
//   fixed slack instead of letting V8 grow it to several times the live data;
// - for a restore or a data check, V8 without its top compiler tier (see node-flags.mjs).
// When this Node is older than 22, the child is the project-local Node 24 that scripts/ensure-node.sh provisions.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { nodeFlagsFor } from './node-flags.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const entry = join(here, '..', 'dist', 'main.js');
const major = Number(process.versions.node.split('.')[0]);

function localNode() {
  const pkg = `node-${process.platform}-${process.arch}`;
  for (let dir = here, i = 0; i < 8; i++, dir = dirname(dir)) {
    const candidate = join(dir, '.tools', 'node', 'node_modules', pkg, 'bin', 'node');
    if (existsSync(candidate)) return candidate;
  }
  return undefined;
}

if (!existsSync(entry)) {
  process.stderr.write(`bam: ${entry} is missing: build the CLI first (npm run build in the repository root)\n`);
  process.exit(1);
}

const node = major >= 22 ? process.execPath : process.env.BACKUP_MANAGER_NODE || localNode();
if (!node) {
  process.stderr.write(`bam needs Node.js 22 or newer; this is ${process.version}. Install Node 24 LTS (or run scripts/ensure-node.sh in the repository) and retry.\n`);
  process.exit(1);
}
const env = { ...process.env, BAM_LAUNCHER_FD: '3' };
env.MALLOC_MMAP_THRESHOLD_ ??= '131072';
env.MALLOC_ARENA_MAX ??= '2';
// fd 3 is a pipe the child watches: if this process dies, even by SIGKILL, the pipe closes and the child stops at
// once instead of running on unseen.
const args = process.argv.slice(2);
const child = spawn(node, [...nodeFlagsFor(args), entry, ...args], { stdio: ['inherit', 'inherit', 'inherit', 'pipe'], env });
// Signals are passed on to the child, which stops cleanly. A terminal's Ctrl-C reaches both processes at once; the
// child counts interrupts that close together as one, so the forwarded copy does not turn into "quit at once".
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => child.kill(sig));
child.on('error', (e) => {
  process.stderr.write(`bam: cannot start ${node}: ${e.message}\n`);
  process.exit(1);
});
child.on('exit', (code, signal) => {
  if (signal) {
    process.removeAllListeners(signal);
    process.kill(process.pid, signal);
  } else {
    process.exit(code ?? 1);
  }
});
