/**
 * A private, frozen copy of bam's build for the length of one benchmark. Other engineers rebuild the workspace
 * while a benchmark runs (a first full run saw five different builds); timing `apps/cli/dist` live would mix them.
 * The copy keeps the workspace layout that Node's resolution needs: `apps/cli/{bin,dist}`, every workspace
 * package's `package.json` and `dist` under `node_modules/@backup-manager/`, and symlinks to everything else in
 * `node_modules` (third-party code, which nobody rebuilds).
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/** Digest of the built bam: every file under apps/cli/dist and each workspace package's dist, with its path. */
export function buildDigest(workspace: string): string {
  const hash = createHash('sha256');
  const dists = [path.join('apps', 'cli', 'dist'), ...fs.readdirSync(path.join(workspace, 'packages')).sort().map((p) => path.join('packages', p, 'dist'))];
  const walk = (rel: string): void => {
    const abs = path.join(workspace, rel);
    if (!fs.existsSync(abs)) return;
    for (const name of fs.readdirSync(abs).sort()) {
      const child = path.join(rel, name);
      if (fs.statSync(path.join(workspace, child)).isDirectory()) walk(child);
      else hash.update(child).update(fs.readFileSync(path.join(workspace, child)));
    }
  };
  for (const d of dists) walk(d);
  return hash.digest('hex');
}

function linkEntries(fromDir: string, toDir: string, skip: (name: string) => boolean): void {
  if (!fs.existsSync(fromDir)) return;
  fs.mkdirSync(toDir, { recursive: true });
  for (const name of fs.readdirSync(fromDir)) {
    if (name.startsWith('.') || skip(name)) continue;
    fs.symlinkSync(fs.realpathSync(path.join(fromDir, name)), path.join(toDir, name));
  }
}

function copyPackage(from: string, to: string, parts: readonly string[]): void {
  fs.mkdirSync(to, { recursive: true });
  for (const part of parts) {
    const src = path.join(from, part);
    if (fs.existsSync(src)) fs.cpSync(src, path.join(to, part), { recursive: true });
  }
  linkEntries(path.join(from, 'node_modules'), path.join(to, 'node_modules'), () => false);
}

/**
 * Copies the current build into `dest` and returns its digest. Retries while the build changes under the copy (a
 * rebuild in progress), up to five times ten seconds apart.
 */
export async function freezeBam(workspace: string, dest: string, log: (m: string) => void): Promise<string> {
  for (let attempt = 1; ; attempt++) {
    const before = buildDigest(workspace);
    fs.rmSync(dest, { recursive: true, force: true });
    copyPackage(path.join(workspace, 'apps', 'cli'), path.join(dest, 'apps', 'cli'), ['package.json', 'bin', 'dist']);
    const scope = path.join(workspace, 'node_modules', '@backup-manager');
    for (const name of fs.existsSync(scope) ? fs.readdirSync(scope) : []) {
      const real = fs.realpathSync(path.join(scope, name));
      if (name === 'cli' || !fs.existsSync(path.join(real, 'dist'))) continue;
      copyPackage(real, path.join(dest, 'node_modules', '@backup-manager', name), ['package.json', 'dist']);
    }
    linkEntries(path.join(workspace, 'node_modules'), path.join(dest, 'node_modules'), (name) => name === '@backup-manager');
    if (buildDigest(workspace) === before) return before;
    if (attempt === 5) throw new Error('bam\'s build kept changing while it was being copied (a rebuild in progress?): try again later');
    log('bam\'s build changed while being copied (a rebuild in progress?): retrying in 10 s');
    await new Promise((resolve) => setTimeout(resolve, 10_000));
  }
}
