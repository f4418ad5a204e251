/**
 * End-to-end tests of `bam prune` (and `forget --prune`) through the real launcher: planning and confirmation, bytes
 * freed, idempotence, the exclusive lock against a concurrent backup in both directions, and SIGKILL at seeded
 * random points of a prune, after which every kept snapshot must still read back and a later prune must finish.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalBackend, planPrune, Repository } from '@backup-manager/core-archive';
import { runCli } from '../src/cli.ts';
import { BAM, bam, bamOk, CLI_ROOT, describeRun, hasStackTrace, jsonLines, pseudoRandomBytes, repoFiles, rng, Scratch, sha256, startBam } from './support.ts';

const PASSWORD = 'prune-test-password';
const GENERATIONS = 6;

/** path inside the snapshot (absolute source path) → sha256 of the content */
type Manifest = Record<string, string>;

const scratch = new Scratch('prune');
let template: string;
let src: string;
/** oldest first */
let snaps: { id: string; manifest: Manifest }[];

function freshHome(name: string): string {
  const home = scratch.path(name);
  fs.cpSync(template, home, { recursive: true });
  return home;
}

function manifestOf(dir: string): Manifest {
  const out: Manifest = {};
  for (const name of fs.readdirSync(dir, { recursive: true }) as string[]) {
    const p = path.join(dir, name);
    if (fs.statSync(p).isFile()) out[p] = sha256(fs.readFileSync(p));
  }
  return out;
}

/**
 * Writes generation g: 48 small files, of which every fourth changes each time and a third of the others change
 * and then stay a while, plus two larger ones. A backup packs the new small blobs of both kinds together, so once
 * older snapshots are forgotten many packs are only partly used: the case repacking exists for.
 */
function writeGeneration(g: number): void {
  for (let i = 0; i < 48; i++) {
    let version = 0;
    if (i % 4 === 3) version = g;
    else for (let v = 1; v <= g; v++) if (v % 3 === i % 3) version = v;
    fs.writeFileSync(path.join(src, `f-${String(i).padStart(2, '0')}.bin`), pseudoRandomBytes(3000 + i * 250, 1 + i * 101 + version * 7919));
  }
  fs.writeFileSync(path.join(src, 'medium-a.bin'), pseudoRandomBytes(150_000, 5000 + g));
  fs.writeFileSync(path.join(src, 'medium-b.bin'), pseudoRandomBytes(120_000, 6000 + (g >> 1)));
}

/** Reads every file of every snapshot through the index, checking each file's content against its recorded SHA-256. */
async function readAllSnapshots(home: string, pruned = false): Promise<Map<string, Manifest>> {
  const repo = await Repository.open(new LocalBackend(path.join(home, 'backups')), PASSWORD);
  try {
    if (pruned) expect((await planPrune(repo, { maxUnused: 0 })).empty, 'a complete prune leaves nothing to do').toBe(true);
    await repo.loadIndex();
    const out = new Map<string, Manifest>();
    for (const { id, snapshot } of await repo.listSnapshots()) {
      const manifest: Manifest = {};
      const visit = async (treeId: string, prefix: string): Promise<void> => {
        for (const n of (await repo.loadTree(treeId)).nodes) {
          const p = `${prefix}/${n.name}`;
          if (n.type === 'dir') await visit(n.subtree!, p);
          else if (n.type === 'file') {
            const h = createHash('sha256');
            for (const c of n.content!) h.update(await repo.loadBlob('data', c));
            const got = h.digest('hex');
            if (got !== n.sha256) throw new Error(`${p} in snapshot ${id.slice(0, 8)} reads back wrong`);
            manifest[p] = got;
          }
        }
      };
      await visit(snapshot.tree, '');
      out.set(id, manifest);
    }
    return out;
  } finally {
    repo.close();
  }
}

/**
 * Every snapshot left must be one of ours and read back exactly as it was backed up; with `pruned`, a prune plan
 * (the library's, read-only) must also find nothing left to do.
 */
async function expectIntact(home: string, mustHave: string[], pruned = false): Promise<string[]> {
  const read = await readAllSnapshots(home, pruned);
  for (const id of mustHave) expect(read.has(id), `snapshot ${id.slice(0, 8)} is missing`).toBe(true);
  for (const [id, manifest] of read) {
    const expected = snaps.find((s) => s.id === id);
    expect(expected, `unknown snapshot ${id}`).toBeDefined();
    expect(manifest).toEqual(expected!.manifest);
  }
  return [...read.keys()];
}

function repoBytes(home: string): number {
  const repo = path.join(home, 'backups');
  return (['data', 'index', 'snapshots', 'keys'] as const).flatMap((f) => repoFiles(repo, f)).reduce((n, p) => n + fs.statSync(path.join(repo, p)).size, 0);
}

function repoState(home: string): string[] {
  const repo = path.join(home, 'backups');
  return (['data', 'index', 'snapshots', 'keys'] as const).flatMap((f) => repoFiles(repo, f).map((p) => `${p} ${fs.statSync(path.join(repo, p)).size}`));
}

function planOf(stdout: string): { empty: boolean; estimatedBytesFreed: number; repackPacks: number; removePacks: number } {
  return jsonLines(stdout).find((l) => (l as { type?: string }).type === 'prune-plan') as never;
}

beforeAll(async () => {
  template = scratch.dir('template');
  src = scratch.dir('src');
  const opts = { home: template, password: PASSWORD };
  await bamOk(['init', '--pack-size', '64KiB'], opts);
  snaps = [];
  for (let g = 0; g < GENERATIONS; g++) {
    writeGeneration(g);
    const r = await bamOk(['backup', src, '--time', `2026-10-0${g + 1}T08:00:00Z`, '--json'], opts);
    const summary = jsonLines(r.stdout).find((l) => (l as { type?: string }).type === 'summary') as { snapshot: { id: string } };
    snaps.push({ id: summary.snapshot.id, manifest: manifestOf(src) });
  }
}, 120_000);

afterAll(() => scratch.cleanup());

describe('bam prune', () => {
  it('shows the plan, refuses without a terminal or --yes, and with --dry-run changes nothing', async () => {
    const home = freshHome('plan');
    await bamOk(['forget', '--keep-last', '2', '--yes'], { home, password: PASSWORD });
    const before = repoState(home);
    const dry = await bamOk(['prune', '--dry-run', '--json'], { home, password: PASSWORD });
    const plan = planOf(dry.stdout);
    expect(plan.empty).toBe(false);
    expect(plan.removePacks + plan.repackPacks).toBeGreaterThan(0);
    const text = await bamOk(['prune', '--dry-run'], { home, password: PASSWORD });
    expect(text.stdout).toMatch(/^repository: \d+ pack files/m);
    expect(text.stdout).toMatch(/^prune: .*frees about/m);
    expect(text.stdout).toContain('dry run: nothing was changed');
    const refused = await bam(['prune'], { home, password: PASSWORD });
    expect(refused.code, describeRun(['prune'], refused)).toBe(2);
    expect(refused.stdout).toMatch(/^prune: /m);
    expect(refused.stderr).toMatch(/--yes/);
    expect(repoState(home)).toEqual(before);
    const badPct = await bam(['prune', '--max-unused', '150%'], { home, password: PASSWORD });
    expect(badPct.code).toBe(2);
    expect(hasStackTrace(badPct.stderr)).toBe(false);
  });

  it('frees what it reports, keeps every kept snapshot intact, and a second prune does nothing', async () => {
    const home = freshHome('run');
    await bamOk(['forget', '--keep-last', '2', '--yes'], { home, password: PASSWORD });
    const kept = snaps.slice(-2).map((s) => s.id);
    const before = repoBytes(home);
    const r = await bamOk(['prune', '--yes', '--max-unused', '0', '--json'], { home, password: PASSWORD });
    const plan = planOf(r.stdout);
    const done = jsonLines(r.stdout).find((l) => (l as { type?: string }).type === 'prune') as { bytesFreed: number; packsRepacked: number; totalMs: number };
    expect(plan.repackPacks).toBeGreaterThan(0);
    expect(done.packsRepacked).toBe(plan.repackPacks);
    expect(done.bytesFreed).toBe(before - repoBytes(home));
    expect(done.bytesFreed).toBeGreaterThan(0);
    expect(done.totalMs).toBeGreaterThanOrEqual(0);
    expect(await expectIntact(home, kept)).toHaveLength(2);
    const state = repoState(home);
    const again = await bamOk(['prune', '--yes', '--max-unused', '0'], { home, password: PASSWORD });
    expect(again.stdout).toContain('prune: nothing to do');
    expect(repoState(home)).toEqual(state);
    expect(repoFiles(path.join(home, 'backups'), 'locks')).toEqual([]);
    const log = fs.readFileSync(path.join(home, 'backup.log'), 'utf8');
    expect(log).toMatch(/"operation":"prune","repository":"[^"]+","outcome":"success"/);
  });
});

describe('prune and backup exclude each other', () => {
  it('a backup started while prune holds its exclusive lock fails with LOCKED (exit 11)', async () => {
    const home = freshHome('lock-prune-first');
    await bamOk(['forget', '--keep-last', '3', '--yes'], { home, password: PASSWORD });
    // The real prune command, in-process, stopped at its confirmation question while holding the lock.
    const stdin = Object.assign(new PassThrough(), { isTTY: true });
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    let err = '';
    stderr.on('data', (b: Buffer) => (err += b.toString()));
    stdout.resume();
    const env = { BACKUP_MANAGER_HOME: home, BACKUP_MANAGER_PASSWORD: PASSWORD, TZ: 'UTC', PATH: process.env.PATH ?? '' };
    const prune = runCli(['prune'], env, { stdin, stdout, stderr });
    for (let i = 0; i < 400 && !err.includes('[y/N]'); i++) await new Promise((r) => setTimeout(r, 25));
    expect(err).toContain('Prune as shown? [y/N]');
    expect(repoFiles(path.join(home, 'backups'), 'locks')).toHaveLength(1);

    const backup = await bam(['backup', src], { home, password: PASSWORD });
    expect(backup.code, describeRun(['backup', src], backup)).toBe(11);
    expect(backup.stderr).toMatch(/exclusively locked by prune/);
    const forget = await bam(['forget', '--keep-last', '1', '--yes'], { home, password: PASSWORD });
    expect(forget.code).toBe(11);

    stdin.write('y\n');
    expect(await prune.done).toBe(0);
    expect(repoFiles(path.join(home, 'backups'), 'locks')).toEqual([]);
    await bamOk(['backup', src], { home, password: PASSWORD });
  });

  it('prune and forget started while a backup holds its shared lock fail with LOCKED (exit 11), and the backup loses nothing', async () => {
    const home = freshHome('lock-backup-first');
    await bamOk(['forget', '--keep-last', '2', '--yes'], { home, password: PASSWORD });
    // A backup of stdin that stays open holds its shared lock until we end the input.
    const env = { PATH: process.env.PATH ?? '', HOME: scratch.root, TZ: 'UTC', BACKUP_MANAGER_HOME: home, BACKUP_MANAGER_PASSWORD: PASSWORD };
    const child = spawn(process.execPath, [BAM, 'backup', '--stdin', '--stdin-filename', 'stream.bin', '--json'], { cwd: CLI_ROOT, env, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.resume();
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    const streamed = pseudoRandomBytes(700_000, 42);
    child.stdin.write(streamed.subarray(0, 300_000));
    const locks = path.join(home, 'backups');
    for (let i = 0; i < 400 && repoFiles(locks, 'locks').length === 0; i++) await new Promise((r) => setTimeout(r, 25));
    expect(repoFiles(locks, 'locks')).toHaveLength(1);

    const prune = await bam(['prune', '--yes'], { home, password: PASSWORD });
    expect(prune.code, describeRun(['prune', '--yes'], prune)).toBe(11);
    expect(prune.stderr).toMatch(/locked by backup/);
    const forget = await bam(['forget', '--keep-last', '1', '--prune', '--yes'], { home, password: PASSWORD });
    expect(forget.code).toBe(11);

    child.stdin.end(streamed.subarray(300_000));
    expect(await exited).toBe(0);
    const summary = jsonLines(out).find((l) => (l as { type?: string }).type === 'summary') as { snapshot: { id: string } };
    // now prune runs, and the streamed snapshot reads back byte for byte
    await bamOk(['prune', '--yes', '--max-unused', '0'], { home, password: PASSWORD });
    const dumped = await bam(['dump', summary.snapshot.id, '/stream.bin'], { home, password: PASSWORD });
    expect(dumped.code).toBe(0);
    expect(sha256(dumped.stdoutBytes)).toBe(sha256(streamed));
  });
});

describe('SIGKILL during forget --prune', () => {
  // Where each seeded run aims: a line of the command's --json output, then a random delay below the bound. The
  // last steps take a few milliseconds in all, so their delays are short; the library test covers every single write.
  const TARGETS: readonly [string, number][] = [
    ['forget-plan', 10], ['walk', 10], ['repack', 10], ['repack', 40],
    ['write-index', 2], ['delete-index', 2], ['delete-packs', 3], ['write-index', 1],
  ];

  it('at seeded random points leaves every kept snapshot readable, and a later prune finishes the job', async () => {
    const outcomes: string[] = [];
    const kept = snaps.slice(-2).map((s) => s.id);
    for (let seed = 1; seed <= TARGETS.length; seed++) {
      const random = rng(seed);
      const [phase, maxDelay] = TARGETS[seed - 1]!;
      const delay = Math.floor(random() * (maxDelay + 1));
      const home = freshHome(`kill-${seed}`);
      const args = ['forget', '--keep-last', '2', '--prune', '--max-unused', '0', '--yes', '--json'];
      const run = startBam(args, { home, password: PASSWORD });
      let buffered = '';
      let armed = false;
      run.child.stdout!.on('data', (b: Buffer) => {
        buffered += b.toString();
        let nl: number;
        while ((nl = buffered.indexOf('\n')) >= 0) {
          const line = buffered.slice(0, nl);
          buffered = buffered.slice(nl + 1);
          const doc = JSON.parse(line) as { type?: string; phase?: string };
          const hit = phase === 'forget-plan' ? doc.type === 'forget-plan' : doc.type === 'progress' && doc.phase === phase;
          if (hit && !armed) {
            armed = true;
            if (delay === 0) run.child.kill('SIGKILL');
            else setTimeout(() => run.child.kill('SIGKILL'), delay);
          }
        }
      });
      const r = await run.result;
      const repoDir = path.join(home, 'backups');
      const left = `${repoFiles(repoDir, 'snapshots').length} snapshots, ${repoFiles(repoDir, 'index').length} index files, ${repoFiles(repoDir, 'data').length} packs`;
      outcomes.push(`seed ${seed}: ${phase}+${delay}ms → ${r.signal ?? `exit ${r.code}`} (left ${left})`);
      expect(r.signal === 'SIGKILL' || r.code === 0, describeRun(args, r)).toBe(true);

      // Right after the kill: every snapshot still there reads back exactly.
      await expectIntact(home, kept);
      // A later run finishes the job: forget what is left to forget, prune, and then there is nothing left to do.
      await bamOk(['forget', '--keep-last', '2', '--prune', '--max-unused', '0', '--yes'], { home, password: PASSWORD });
      expect((await expectIntact(home, kept, true)).sort()).toEqual([...kept].sort());
      expect(repoFiles(path.join(home, 'backups'), 'locks')).toEqual([]);
    }
    console.log(`SIGKILL runs:\n  ${outcomes.join('\n  ')}`);
    expect(outcomes.filter((o) => o.includes('→ SIGKILL')).length).toBeGreaterThanOrEqual(5);
  }, 120_000);
});
