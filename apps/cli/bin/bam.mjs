#!/usr/bin/env node
// Launcher for `bam`. It must run on any Node: when this Node is older than 22, it re-runs the CLI with the
// project-local Node 24 that scripts/ensure-node.sh provisions (if there is one), else says what to install.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

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

if (major >= 22) {
  await import(pathToFileURL(entry).href);
} else {
  const node = process.env.BACKUP_MANAGER_NODE || localNode();
  if (!node) {
    process.stderr.write(`bam needs Node.js 22 or newer; this is ${process.version}. Install Node 24 LTS (or run scripts/ensure-node.sh in the repository) and retry.\n`);
    process.exit(1);
  }
  const child = spawn(node, [entry, ...process.argv.slice(2)], { stdio: 'inherit' });
  // Ctrl-C reaches the child through the terminal's process group; the child decides how to stop.
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => { if (sig !== 'SIGINT') child.kill(sig); });
  child.on('exit', (code, signal) => {
    if (signal) process.kill(process.pid, signal);
    else process.exit(code ?? 1);
  });
}
