/**
 * Reading and writing config.json in the state folder. A missing file means "all defaults"; an invalid one is a
 * ConfigError listing every problem. Writes are atomic (temporary file, fsync, rename) and private (mode 0600).
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { ConfigError } from './errors.ts';
import type { ConfigIssue } from './errors.ts';
import { defaultConfig } from './defaults.ts';
import { configValidation } from './lazy.ts';
import { statePaths } from './paths.ts';
import type { Config, ConfigInput } from './schema.ts';

export interface LoadedConfig {
  config: Config;
  /** The config file's path, whether or not it exists. */
  path: string;
  /** False when there is no config file and `config` is all defaults. */
  exists: boolean;
}

export { defaultConfig } from './defaults.ts';

function invalid(path: string, issues: readonly ConfigIssue[], formatIssues: (issues: readonly ConfigIssue[]) => string): ConfigError {
  const count = issues.length === 1 ? 'a problem' : `${issues.length} problems`;
  return new ConfigError(
    'CONFIG_INVALID',
    `${path} has ${count}:\n${formatIssues(issues)}\nEdit the file to fix ${issues.length === 1 ? 'it' : 'them'} and run the command again.`,
    path,
    issues,
  );
}

function errorCode(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null && 'code' in error && typeof error.code === 'string'
    ? error.code
    : undefined;
}

/**
 * Reads `<home>/config.json`. Missing → defaults with `exists: false`.
 * @throws ConfigError CONFIG_INVALID with every issue, or IO when the file exists but cannot be read.
 */
export async function loadConfig(home: string): Promise<LoadedConfig> {
  const path = statePaths(home).config;
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return { config: defaultConfig(), path, exists: false };
    throw new ConfigError(
      'IO',
      `Could not read ${path} (${errorCode(error) ?? 'unknown error'}); check that it is a file you can read.`,
      path,
      [],
      { cause: error },
    );
  }
  const { parseConfigText, formatIssues } = await configValidation();
  const result = parseConfigText(text);
  if (!result.ok) throw invalid(path, result.issues, formatIssues);
  return { config: result.config, path, exists: true };
}

/**
 * Validates `config` and writes it to `<home>/config.json` atomically with mode 0600, creating `home` (mode 0700)
 * when needed. Writes the object as given: keys left out keep meaning "the default". Returns the file's path.
 * @throws ConfigError CONFIG_INVALID when `config` is not valid (nothing is written), IO when writing fails.
 */
export async function writeConfig(home: string, config: Config | ConfigInput): Promise<string> {
  const path = statePaths(home).config;
  const { parseConfig, formatIssues } = await configValidation();
  const result = parseConfig(config);
  if (!result.ok) throw invalid(path, result.issues, formatIssues);
  const text = `${JSON.stringify(config, null, 2)}\n`;
  const temporary = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    const file = await open(temporary, 'wx', 0o600);
    try {
      await file.writeFile(text, 'utf8');
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(temporary, path);
  } catch (error) {
    // The temporary file may not exist (or its folder may not); the original error is the one to report.
    await rm(temporary, { force: true }).catch(() => undefined);
    throw new ConfigError(
      'IO',
      `Could not write ${path} (${errorCode(error) ?? 'unknown error'}); check that ${dirname(path)} is writable and has free space.`,
      path,
      [],
      { cause: error },
    );
  }
  await syncDirectory(dirname(path));
  return path;
}

/** Makes the rename durable. Some platforms and filesystems cannot fsync a directory; the rename already happened. */
async function syncDirectory(directory: string): Promise<void> {
  try {
    const handle = await open(directory, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // Best effort only.
  }
}
