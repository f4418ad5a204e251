// loadConfig and writeConfig against a temporary BACKUP_MANAGER_HOME.
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError } from './errors.ts';
import { defaultConfig, loadConfig, writeConfig } from './load.ts';
import { resolveHome } from './paths.ts';

let root: string;
let home: string;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'bam-config-'));
  home = resolveHome({ BACKUP_MANAGER_HOME: join(root, 'state') }, '/nonexistent');
});

afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

async function thrown(promise: Promise<unknown>): Promise<ConfigError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig', () => {
  it('returns the defaults when there is no config file', async () => {
    const loaded = await loadConfig(home);
    expect(loaded).toEqual({ config: defaultConfig(), path: join(home, 'config.json'), exists: false });
  });

  it('round-trips what writeConfig wrote', async () => {
    const config = defaultConfig();
    config.sources.push({
      path: '~/Documents',
      priority: 'high',
      schedule: '0 * * * *',
      rpo: '1h',
      rto: '2h',
      type: 'incremental',
      exclude: ['**/node_modules'],
      exclude_if_present: ['.nobackup'],
      exclude_larger_than: '2GiB',
      tags: ['docs'],
    });
    config.destinations.google_drive = { enabled: true, path: 'bam', client_id: 'client.apps.example', append_only: true };
    config.retention.keep_within = '30d';

    const path = await writeConfig(home, config);
    expect(path).toBe(join(home, 'config.json'));
    const loaded = await loadConfig(home);
    expect(loaded).toEqual({ config, path, exists: true });
  });

  it('keeps a minimal config minimal on disk', async () => {
    await writeConfig(home, { sources: [{ path: '/data' }] });
    expect(JSON.parse(await readFile(join(home, 'config.json'), 'utf8'))).toEqual({ sources: [{ path: '/data' }] });
    expect((await loadConfig(home)).config.sources[0]?.schedule).toBe('0 2 * * *');
  });

  it('throws CONFIG_INVALID listing each issue with its path and fix', async () => {
    await mkdir(home, { recursive: true });
    const path = join(home, 'config.json');
    await writeFile(path, JSON.stringify({ sources: [{ path: '~/a', priority: 'urgent' }], destinations: { gdrive: {} } }));
    const error = await thrown(loadConfig(home));
    expect(error.code).toBe('CONFIG_INVALID');
    expect(error.path).toBe(path);
    expect(error.issues.map((issue) => issue.path)).toEqual(['sources[0].priority', 'destinations.gdrive']);
    expect(error.message).toBe(
      `${path} has 2 problems:\n` +
        '- sources[0].priority: must be one of high, medium, low; got "urgent"\n' +
        '- destinations.gdrive: unknown key "gdrive"; did you mean "google_drive"?\n' +
        'Edit the file to fix them and run the command again.',
    );
  });

  it('throws CONFIG_INVALID with line and column for broken JSON', async () => {
    await mkdir(home, { recursive: true });
    await writeFile(join(home, 'config.json'), '{\n  "version": 1,\n}\n');
    const error = await thrown(loadConfig(home));
    expect(error.code).toBe('CONFIG_INVALID');
    expect(error.issues).toEqual([
      expect.objectContaining({ path: '', line: 2, column: 15 }) as unknown as object,
    ]);
    expect(error.message).toContain('invalid JSON at line 2, column 15: remove the comma before "}"');
  });

  it('throws IO when config.json cannot be read', async () => {
    await mkdir(join(home, 'config.json'), { recursive: true });
    const error = await thrown(loadConfig(home));
    expect(error.code).toBe('IO');
    expect(error.message).toContain('EISDIR');
    expect(error.cause).toBeDefined();
  });
});

describe('writeConfig', () => {
  it('creates the state folder and writes mode 0600 with no temporary file left', async () => {
    await writeConfig(home, defaultConfig());
    expect((await stat(join(home, 'config.json'))).mode & 0o777).toBe(0o600);
    expect((await stat(home)).mode & 0o777).toBe(0o700);
    expect(await readdir(home)).toEqual(['config.json']);
  });

  it('replaces an existing file and tightens its mode', async () => {
    await mkdir(home, { recursive: true });
    const path = join(home, 'config.json');
    await writeFile(path, '{}');
    await chmod(path, 0o644);
    await writeConfig(home, { retention: { daily: 1 } });
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect((await loadConfig(home)).config.retention.daily).toBe(1);
  });

  it('refuses an invalid config and leaves the file alone', async () => {
    await writeConfig(home, { retention: { daily: 2 } });
    const error = await thrown(writeConfig(home, { retention: { daily: -2 } }));
    expect(error.code).toBe('CONFIG_INVALID');
    expect(error.issues[0]?.path).toBe('retention.daily');
    expect((await loadConfig(home)).config.retention.daily).toBe(2);
  });

  it('throws IO and cleans up when the folder cannot be written', async () => {
    await writeFile(join(root, 'not-a-folder'), '');
    const error = await thrown(writeConfig(join(root, 'not-a-folder'), {}));
    expect(error.code).toBe('IO');
    expect(await readdir(root)).toEqual(['not-a-folder']);
  });
});
