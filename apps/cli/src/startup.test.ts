// What loading the CLI costs: the cloud provider packages (and their SDKs) must not be imported until a cloud
// destination is used, nor any command's implementation (and the packages only it uses) until that command runs,
// nor zod until a config file is read, so that every command starts without them (issue 3: peak RSS).
import { spawnSync } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import { describe, expect, test } from 'vitest';

/** The URLs of every module that importing `entry` (a file of this folder) resolves, in a fresh Node process. */
function modulesLoadedBy(entry: string): string[] {
  const script = `
    import { registerHooks } from 'node:module';
    const seen = [];
    registerHooks({ resolve(specifier, context, next) { const r = next(specifier, context); seen.push(r.url); return r; } });
    await import(${JSON.stringify(pathToFileURL(`${import.meta.dirname}/${entry}`).href)});
    process.stdout.write(JSON.stringify(seen));
  `;
  const r = spawnSync(process.execPath, ['--conditions=source', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`node exited with ${r.status}: ${r.stderr}`);
  return JSON.parse(r.stdout) as string[];
}

describe('start-up', () => {
  test('the CLI imports no cloud provider until a cloud destination is used', () => {
    const loaded = modulesLoadedBy('cli.ts');
    // The hook sees the workspace packages the CLI does import.
    expect(loaded.some((url) => url.includes('/packages/core-archive/'))).toBe(true);
    expect(loaded.filter((url) => /providers-(gdrive|dropbox|onedrive)|googleapis|\/dropbox\/|microsoft-graph/.test(url))).toEqual([]);
  });

  test('the CLI loads no command implementation, zod, cron parser or HTTP server until they are used', () => {
    const loaded = modulesLoadedBy('cli.ts');
    expect(loaded.some((url) => url.includes('/commander/'))).toBe(true);
    expect(loaded.filter((url) => /\/node_modules\/(zod|cron-parser|luxon)\//.test(url))).toEqual([]);
    expect(loaded.filter((url) => /\/packages\/(verify|workflows|retention-gfs)\//.test(url))).toEqual([]);
    expect(loaded.filter((url) => /\/packages\/config\/src\/(schema|parse|validation|json-schema|cron)\.ts$/.test(url))).toEqual([]);
    expect(loaded.filter((url) => /\/apps\/cli\/src\/commands\//.test(url) && !url.endsWith('/commands/register.ts'))).toEqual([]);
    expect(loaded).not.toContain('node:http');
  });
});
