/**
 * Who and when an operation runs as: hostname, user and an injectable clock. Passed into the engine instead of
 * read from globals, so that tests control time and identity.
 */
import os from 'node:os';

export interface RunContext {
  readonly hostname: string;
  readonly username: string;
  readonly uid: number;
  readonly gid: number;
  readonly pid: number;
  readonly now: () => Date;
}

export function defaultContext(overrides: Partial<RunContext> = {}): RunContext {
  let username = 'unknown';
  try {
    username = os.userInfo().username;
  } catch {
    username = process.env.USER ?? 'unknown';
  }
  return {
    hostname: overrides.hostname ?? os.hostname(),
    username: overrides.username ?? username,
    uid: overrides.uid ?? (process.getuid?.() ?? 0),
    gid: overrides.gid ?? (process.getgid?.() ?? 0),
    pid: overrides.pid ?? process.pid,
    now: overrides.now ?? (() => new Date()),
  };
}
