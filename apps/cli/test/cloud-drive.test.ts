/**
 * Issue 6 end to end on the Google Drive fake: `bam auth google_drive` through the browser step, a repository that
 * lives directly on Drive (`--repo gdrive:…`: init, backup, restore), and an access token that expires in the middle
 * of a backup (refreshed, and the new token saved). No token may appear in any output or in backup.log.
 */
import fs from 'node:fs';
import path from 'node:path';
import { startGdriveFake } from '@backup-manager/cloud-fakes';
import type { GdriveFake } from '@backup-manager/cloud-fakes';
import { compareTrees } from '@backup-manager/core-archive/testing';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { FAST_RETRIES, authThroughBrowser, collectTokens, endpointEnv, expectNoTokens, lines, logLines } from './cloud-support.ts';
import { Scratch, bam, bamOk, describeRun, hasStackTrace, pseudoRandomBytes } from './support.ts';
import type { RunResult } from './support.ts';

const PASSWORD = 'cloud-drive-pw-71c2';
const REPO = 'gdrive:backups/repo1';

describe('Google Drive: bam auth, a repository on Drive, an expired token', () => {
  const s = new Scratch('cloud-drive');
  let fake: GdriveFake;
  const home = s.path('home');
  const runs: RunResult[] = [];
  const seen = new Set<string>();
  let options: { home: string; password: string; env: Record<string, string> };

  beforeAll(async () => {
    fake = await startGdriveFake();
    fs.mkdirSync(home, { recursive: true });
    fs.writeFileSync(
      path.join(home, 'config.json'),
      JSON.stringify({ destinations: { google_drive: { enabled: false, client_id: 'drive-client-id', client_secret: 'drive-client-secret' } } }),
    );
    options = { home, password: PASSWORD, env: { ...endpointEnv('google_drive', fake.url), ...FAST_RETRIES } };
  });
  afterAll(async () => {
    await fake.close();
    s.cleanup();
  });

  test('bam auth google_drive signs in through the browser and saves the tokens, readable only by the user', async () => {
    const { run, page, url } = await authThroughBrowser('google_drive', options);
    runs.push(run);
    expect(run.code, describeRun(['auth', 'google_drive'], run)).toBe(0);
    expect(page).toContain('Signed in');
    // PKCE and a loopback redirect on 127.0.0.1.
    const asked = new URL(url);
    expect(asked.searchParams.get('code_challenge_method')).toBe('S256');
    expect(asked.searchParams.get('redirect_uri')).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/callback$/);
    expect(asked.searchParams.get('client_id')).toBe('drive-client-id');
    expect(run.stderr).toContain(url);

    const file = path.join(home, 'google_drive-token.json');
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    const tokens = collectTokens(seen, home, 'google_drive');
    expect(tokens.accessToken).toMatch(/^fake-at-/);
    expect(tokens.refreshToken).toMatch(/^fake-rt-/);
    expect(lines(run).at(-1)).toMatchObject({ type: 'auth', provider: 'google_drive', tokenFile: file, refreshable: true });
    expect(logLines(home).at(-1)).toMatchObject({ operation: 'auth', destination: 'google_drive', outcome: 'success' });
    expectNoTokens(seen, home, runs);

    // `gdrive` is the same provider.
    const again = await authThroughBrowser('gdrive', options);
    runs.push(again.run);
    expect(again.run.code, describeRun(['auth', 'gdrive'], again.run)).toBe(0);
    collectTokens(seen, home, 'google_drive');
    expectNoTokens(seen, home, runs);
  });

  test('init, backup and restore with the repository on Drive; a token that expires mid-backup is refreshed and saved', async () => {
    const src = s.dir('src');
    fs.writeFileSync(path.join(src, 'notes.txt'), 'kept on Drive\n');
    fs.mkdirSync(path.join(src, 'sub'));
    fs.writeFileSync(path.join(src, 'sub', 'data.bin'), pseudoRandomBytes(1_500_000, 3));

    const init = await bamOk(['init', '--repo', REPO, '--pack-size', '512KiB', '--json'], options);
    runs.push(init);
    expect(lines(init)[0]).toMatchObject({ type: 'init', repository: REPO });
    // The repository's folders were created on Drive.
    const names = [...fake.files.values()].map((f) => f.name);
    for (const folder of ['backups', 'repo1', 'data', 'index', 'keys', 'snapshots', 'locks', 'config']) expect(names).toContain(folder);
    const exists = await bam(['init', '--repo', REPO], options);
    runs.push(exists);
    expect(exists.code).toBe(1);
    expect(exists.stderr).toContain('already exists');

    const before = collectTokens(seen, home, 'google_drive');
    const refreshes = (): number => fake.log.entries.filter((e) => e.method === 'POST' && e.path === '/token').length;
    const refreshesBefore = refreshes();
    // The fake expires the access token that a file listing carries, in the middle of the backup.
    fake.faults.add({ method: 'GET', path: '/drive/v3/files', nth: 3, action: { kind: 'expire-token' } });
    const backup = await bamOk(['backup', '--repo', REPO, src, '--json'], options);
    runs.push(backup);
    expect(fake.faults.pending()).toBe(0);
    expect(refreshes()).toBe(refreshesBefore + 1);
    const after = collectTokens(seen, home, 'google_drive');
    expect(after.accessToken).not.toBe(before.accessToken);
    expect(after.refreshToken).toBe(before.refreshToken);

    const summary = lines(backup).find((l) => l.type === 'summary') as { snapshot: { id: string } };
    const target = s.path('restored');
    const badLimit = await bam(['--limit-download', 'fast', 'snapshots', '--repo', REPO], options);
    runs.push(badLimit);
    expect(badLimit.code).toBe(2);
    expect(badLimit.stderr).toContain('--limit-download takes a rate in KiB/s');
    const restore = await bamOk(['restore', 'latest', '--repo', REPO, '--target', target, '--limit-download', '100000'], options);
    runs.push(restore);
    expect(restore.stdout).toContain(summary.snapshot.id.slice(0, 8));
    expect(compareTrees(src, path.join(target, src))).toEqual([]);
    // The saved (refreshed) token served the restore: no further refresh was needed.
    expect(refreshes()).toBe(refreshesBefore + 1);

    const log = logLines(home).filter((l) => l.repository === REPO && l.outcome === 'success');
    expect(log.map((l) => l.operation)).toEqual(['init', 'backup', 'restore']);
    for (const r of runs) expect(hasStackTrace(r.stderr)).toBe(false);
    expectNoTokens(seen, home, runs);
  });

  test('without a client id or a sign-in, bam says what to do', async () => {
    const bare = s.dir('bare-home');
    const env = endpointEnv('google_drive', fake.url);
    const noClient = await bam(['auth', 'google_drive'], { home: bare, password: PASSWORD, env });
    expect(noClient.code).toBe(1);
    expect(noClient.stderr).toMatch(/no OAuth client is configured for google_drive: add "client_id" under destinations\.google_drive/);
    const unknown = await bam(['auth', 'icloud'], { home: bare, password: PASSWORD });
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('choose google_drive (or gdrive), dropbox or onedrive');

    fs.copyFileSync(path.join(home, 'config.json'), path.join(bare, 'config.json'));
    const notSignedIn = await bam(['snapshots', '--repo', REPO], { home: bare, password: PASSWORD, env });
    expect(notSignedIn.code).toBe(1);
    expect(notSignedIn.stderr).toContain('not signed in to google_drive: run `bam auth google_drive` first');
    expect(hasStackTrace(notSignedIn.stderr)).toBe(false);
  });
});
