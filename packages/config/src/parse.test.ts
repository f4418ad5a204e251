// parseConfig and parseConfigText: defaults, a realistic config, and the path and message of each kind of mistake.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { ConfigIssue } from './errors.ts';
import { editDistance, formatIssues, formatPath, parseConfig, parseConfigText, suggest } from './parse.ts';
import type { ParseResult } from './parse.ts';

function issuesOf(result: ParseResult): ConfigIssue[] {
  if (result.ok) throw new Error('expected the config to be refused');
  return result.issues;
}

/** The single issue `input` produces; fails when there are none or several. */
function onlyIssue(input: unknown): ConfigIssue {
  const issues = issuesOf(parseConfig(input));
  expect(issues).toHaveLength(1);
  return issues[0] as ConfigIssue;
}

function readmeExample(): string {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const match = /## Complete example\s+```json\n([\s\S]*?)```/.exec(readme);
  if (match?.[1] === undefined) throw new Error('README.md has no "## Complete example" json block');
  return match[1];
}

describe('defaults', () => {
  // What an empty object becomes is defaults.ts, checked against parseConfig({}) in defaults.test.ts.
  it('fill every field of a source given only its path', () => {
    const result = parseConfig({ sources: [{ path: '~/Documents' }] });
    expect(result.ok && result.config.sources[0]).toEqual({
      path: '~/Documents',
      priority: 'medium',
      schedule: '0 2 * * *',
      rpo: '24h',
      rto: '4h',
      type: 'incremental',
      exclude: [],
      exclude_if_present: [],
      exclude_larger_than: null,
      tags: [],
    });
  });

  it('fill the rest of a partly written section', () => {
    const result = parseConfig({ destinations: { google_drive: { enabled: true, client_id: 'id' } }, retention: { daily: 30 } });
    expect(result.ok && result.config.destinations.google_drive).toEqual({
      enabled: true,
      path: 'backup-manager',
      client_id: 'id',
      append_only: false,
    });
    expect(result.ok && result.config.destinations.local.enabled).toBe(true);
    expect(result.ok && result.config.retention).toEqual({ daily: 30, weekly: 4, monthly: 12, yearly: 3 });
  });

  it('do not share objects between parses', () => {
    const first = parseConfig({});
    if (!first.ok) throw new Error('defaults must parse');
    first.config.sources.push({ ...first.config.sources[0], path: '/x' } as never);
    first.config.destinations.local.enabled = false;
    first.config.retention.daily = 0;
    const second = parseConfig({});
    expect(second.ok && second.config.sources).toEqual([]);
    expect(second.ok && second.config.destinations.local.enabled).toBe(true);
    expect(second.ok && second.config.retention.daily).toBe(7);
  });
});

describe('a full realistic config (the README example)', () => {
  it('parses, keeps every value as written, and accepts $schema', () => {
    const text = readmeExample();
    const result = parseConfigText(text);
    if (!result.ok) throw new Error(formatIssues(result.issues));
    expect(result.config).toEqual(JSON.parse(text));
    expect(result.config.sources.map((source) => source.priority)).toEqual(['high', 'medium', 'low']);
    expect(result.config.retention.keep_within).toBe('2d');
    const withSchema = parseConfig({ ...JSON.parse(text), $schema: './config.schema.json' });
    expect(withSchema.ok).toBe(true);
  });
});

describe('mistakes are reported at their exact path with what to write instead', () => {
  it('wrong enum value', () => {
    expect(onlyIssue({ sources: [{ path: '~/a', priority: 'urgent' }] })).toEqual({
      path: 'sources[0].priority',
      message: 'must be one of high, medium, low; got "urgent"',
    });
  });

  it('wrong enum value close to an allowed one', () => {
    expect(onlyIssue({ sources: [{ path: '~/a', type: 'incremntal' }] }).message).toBe(
      'must be one of incremental, full, differential; got "incremntal" (did you mean "incremental"?)',
    );
  });

  it('negative retention', () => {
    expect(onlyIssue({ retention: { weekly: -1 } })).toEqual({ path: 'retention.weekly', message: 'must be at least 0; got -1' });
  });

  it('fractional retention', () => {
    expect(onlyIssue({ retention: { monthly: 1.5 } })).toEqual({
      path: 'retention.monthly',
      message: 'must be a whole number; got 1.5 (no fraction)',
    });
  });

  it('retention that keeps nothing', () => {
    const issue = onlyIssue({ retention: { daily: 0, weekly: 0, monthly: 0, yearly: 0 } });
    expect(issue.path).toBe('retention.daily');
    expect(issue.message).toMatch(/would delete every snapshot; keep at least one/);
    expect(parseConfig({ retention: { daily: 0, weekly: 0, monthly: 0, yearly: 0, keep_last: 1 } }).ok).toBe(true);
  });

  it('bad cron expression', () => {
    const issue = onlyIssue({ sources: [{ path: '/data', schedule: '0 25 * * *' }] });
    expect(issue.path).toBe('sources[0].schedule');
    expect(issue.message).toMatch(/^"0 25 \* \* \*" is not a valid schedule: hour 25 is out of range 0-23; write 5 fields .*"0 2 \* \* \*"/);
    expect(onlyIssue({ verify: { schedule: 'daily' } }).path).toBe('verify.schedule');
  });

  it('bad duration', () => {
    expect(onlyIssue({ sources: [{ path: '/data', rpo: '24' }] })).toEqual({
      path: 'sources[0].rpo',
      message: expect.stringMatching(/^"24" has no unit; use a number and a unit .*"24h"/) as unknown as string,
    });
    expect(onlyIssue({ sources: [{ path: '/data', rto: '0h' }] }).message).toBe('"0h" is zero; use a positive duration such as "24h"');
    expect(onlyIssue({ retention: { keep_within: '6m' } }).message).toMatch(/m means minutes.*"180d"/);
  });

  it('bad size', () => {
    expect(onlyIssue({ sources: [{ path: '/data', exclude_larger_than: '2 gigs' }] })).toMatchObject({
      path: 'sources[0].exclude_larger_than',
      message: expect.stringMatching(/^"2 gigs" is not a size; .*"2GiB"/) as unknown as string,
    });
    expect(onlyIssue({ repository: { pack_size: '-16MiB' } }).path).toBe('repository.pack_size');
  });

  it('bad process priorities', () => {
    expect(onlyIssue({ process: { nice: 25 } })).toEqual({ path: 'process.nice', message: 'must be at most 19; got 25' });
    expect(onlyIssue({ process: { nice: -5 } }).message).toBe('must be at least 0; got -5');
    expect(onlyIssue({ process: { io_priority: 'realtime:0' } })).toMatchObject({
      path: 'process.io_priority',
      message: expect.stringMatching(/^"realtime:0" is not an I\/O priority; write "idle", "best-effort" or "best-effort:N"/) as unknown as string,
    });
    expect(parseConfig({ process: { nice: 19, io_priority: 'best-effort:7' } }).ok).toBe(true);
  });

  it('bad verification subset', () => {
    expect(onlyIssue({ verify: { read_data_subset: '150%' } })).toMatchObject({ path: 'verify.read_data_subset' });
    expect(onlyIssue({ verify: { read_data_subset: '6/5' } }).message).toMatch(/1 <= n <= t/);
    expect(parseConfig({ verify: { read_data_subset: '1/5' } }).ok).toBe(true);
    expect(parseConfig({ verify: { read_data_subset: '500MiB' } }).ok).toBe(true);
  });

  it('unknown key with a suggestion', () => {
    expect(onlyIssue({ destinations: { gdrive: { enabled: true } } })).toEqual({
      path: 'destinations.gdrive',
      message: 'unknown key "gdrive"; did you mean "google_drive"?',
    });
    expect(onlyIssue({ sources: [{ path: '/a', priorty: 'high' }] })).toEqual({
      path: 'sources[0].priorty',
      message: 'unknown key "priorty"; did you mean "priority"?',
    });
    expect(onlyIssue({ retention: { 'keep-daily': 7 } }).message).toBe('unknown key "keep-daily"; did you mean "daily"?');
    expect(onlyIssue({ alerts: { webhookUrl: 'https://x.example' } }).message).toBe(
      'unknown key "webhookUrl"; did you mean "webhook_url"?',
    );
  });

  it('unknown key without a close match lists the allowed keys', () => {
    expect(onlyIssue({ verify: { frequency: 'weekly' } })).toEqual({
      path: 'verify.frequency',
      message: 'unknown key "frequency"; the keys allowed here are schedule, read_data_subset, rotation_days',
    });
  });

  it('several unknown keys in one object give one issue each', () => {
    const issues = issuesOf(parseConfig({ colour: 1, retension: {} }));
    expect(issues.map((issue) => issue.path)).toEqual(['colour', 'retension']);
    expect(issues[1]?.message).toBe('unknown key "retension"; did you mean "retention"?');
  });

  it.each([
    ['google_drive', 'client_id'],
    ['dropbox', 'app_key'],
    ['onedrive', 'client_id'],
  ])('enabled %s without %s', (provider, key) => {
    const issue = onlyIssue({ destinations: { [provider]: { enabled: true } } });
    expect(issue.path).toBe(`destinations.${provider}.${key}`);
    expect(issue.message).toContain(`add "${key}"`);
    expect(issue.message).toContain(`\`bam auth ${provider}\``);
    expect(parseConfig({ destinations: { [provider]: { enabled: false } } }).ok).toBe(true);
  });

  it('missing source path says what to add', () => {
    const issue = onlyIssue({ sources: [{ priority: 'high' }] });
    expect(issue.path).toBe('sources[0].path');
    expect(issue.message).toMatch(/^is required; add "path" \(folder or file to back up: absolute or starting with ~\//);
  });

  it('relative paths', () => {
    expect(onlyIssue({ sources: [{ path: 'Documents' }] })).toEqual({
      path: 'sources[0].path',
      message: '"Documents" is relative; write an absolute path ("/srv/data") or one starting with ~/ ("~/Documents")',
    });
    expect(onlyIssue({ destinations: { local: { path: './backups' } } }).path).toBe('destinations.local.path');
  });

  it('wrong types, with the common fixes', () => {
    expect(onlyIssue({ retention: { daily: '7' } }).message).toBe('must be a number; got "7" (write 7 without quotes)');
    expect(onlyIssue({ alerts: { notify_on_success: 'true' } }).message).toBe(
      'must be true or false; got "true" (write true without quotes)',
    );
    expect(onlyIssue({ sources: ['~/Documents'] })).toEqual({
      path: 'sources[0]',
      message: 'must be an object { … }; got "~/Documents" (each source is an object: write { "path": "~/Documents" })',
    });
    expect(onlyIssue({ sources: [{ path: '/a', exclude: '*.tmp' }] }).message).toBe(
      'must be a list [ … ]; got "*.tmp" (write ["*.tmp"])',
    );
    expect(onlyIssue([])).toEqual({ path: '', message: 'must be an object { … }; got a list' });
    expect(onlyIssue({ version: '1' }).message).toBe('must be 1; got "1" (write 1 without quotes)');
    expect(onlyIssue({ retention: null })).toEqual({
      path: 'retention',
      message: 'must be an object { … }; got null (leave the key out to use the default)',
    });
  });

  it('a bare number where a size or duration belongs asks for a unit, not just quotes', () => {
    expect(onlyIssue({ sources: [{ path: '/a', exclude_larger_than: 5 }] }).message).toBe(
      'must be text in double quotes; got 5 (write a size with a unit in quotes, e.g. "2GiB")',
    );
    expect(onlyIssue({ sources: [{ path: '/a', rpo: 24 }] }).message).toBe(
      'must be text in double quotes; got 24 (write a duration with a unit in quotes, e.g. "24h")',
    );
  });

  it('out-of-range threshold, bad URL and email', () => {
    expect(onlyIssue({ alerts: { low_space_threshold: 150 } })).toEqual({
      path: 'alerts.low_space_threshold',
      message: 'must be at most 100; got 150',
    });
    expect(onlyIssue({ alerts: { webhook_url: 'ftp://hooks.example.com' } }).message).toMatch(/http:\/\/ or https:\/\//);
    expect(onlyIssue({ alerts: { email: 'me at example' } }).message).toMatch(/"you@example.com"/);
  });

  it('never repeats a secret-bearing value', () => {
    const issue = onlyIssue({ repository: { password_command: 42 } });
    expect(issue.message).toBe('must be text in double quotes; got a number');
    const webhook = onlyIssue({ alerts: { webhook_url: 'gopher://token-abc123@x' } });
    expect(webhook.message).not.toContain('token-abc123');
  });

  it('both password sources', () => {
    expect(onlyIssue({ repository: { password_file: '~/pw', password_command: 'pass show bam' } })).toEqual({
      path: 'repository.password_command',
      message: 'set either password_file or password_command, not both; remove one',
    });
  });

  it('a newer config version', () => {
    expect(onlyIssue({ version: 2 })).toEqual({
      path: 'version',
      message: 'must be 1: this backup-manager reads config version 1 only, got 2; upgrade backup-manager if a newer one wrote the file',
    });
  });

  it('reports every independent problem at once', () => {
    const issues = issuesOf(parseConfig({ sources: [{ path: 'x', priority: 'p' }], retention: { daily: -1 }, extra: true }));
    expect(issues.map((issue) => issue.path)).toEqual(['sources[0].path', 'sources[0].priority', 'retention.daily', 'extra']);
  });
});

describe('parseConfigText', () => {
  it.each([
    ['{\n  "version": 1\n  "sources": []\n}', 3, 3, /a comma is missing between two properties/],
    ['{\n  "sources": [],\n}', 2, 16, /remove the comma before "}"/],
    ['{ "sources": [1, 2,] }', 1, 19, /remove the comma before "]"/],
    ['// my config\n{}', 1, 1, /comments/],
    ["{ 'version': 1 }", 1, 3, /double quotes/],
    ['{ version: 1 }', 1, 3, /property names need double quotes/],
    ['{ "sources": [', 1, 15, /ends where a value/],
    ['{ "retention": { "daily": 7 }', 1, 30, /closing "}" is missing/],
    ['{ "a": "unterminated }', 1, 8, /no closing double quote/],
    ['{ "a": True }', 1, 8, /write true in lower case/],
    ['{ "a": 07 }', 1, 9, /leading zeros/],
    ['{ "path": "C:\\Users" }', 1, 14, /invalid escape/],
    ['{} {}', 1, 4, /after the end/],
  ])('%j → line %d, column %d', (text, line, column, message) => {
    const issues = issuesOf(parseConfigText(text));
    expect(issues).toHaveLength(1);
    expect(issues[0]).toMatchObject({ path: '', line, column });
    expect(issues[0]?.message).toMatch(new RegExp(`^invalid JSON at line ${line}, column ${column}: `));
    expect(issues[0]?.message).toMatch(message);
  });

  it('does not quote the file in a JSON error', () => {
    const issues = issuesOf(parseConfigText('{ "repository": { "password_command": "echo hunter2" x } }'));
    expect(issues[0]?.message).not.toContain('hunter2');
  });

  it('handles an empty file and a byte order mark', () => {
    expect(issuesOf(parseConfigText('  \n'))).toEqual([{ path: '', message: 'the file is empty; write {} to use every default' }]);
    expect(parseConfigText('\uFEFF{}').ok).toBe(true);
  });

  it('validates the parsed value', () => {
    expect(issuesOf(parseConfigText('{ "version": 3 }'))[0]?.path).toBe('version');
  });
});

describe('formatting', () => {
  it('formatIssues lists path and message, one per line', () => {
    expect(
      formatIssues([
        { path: 'sources[0].priority', message: 'must be one of high, medium, low; got "urgent"' },
        { path: '', message: 'invalid JSON at line 1, column 2: x', line: 1, column: 2 },
      ]),
    ).toBe('- sources[0].priority: must be one of high, medium, low; got "urgent"\n- (config): invalid JSON at line 1, column 2: x');
  });

  it('formatPath quotes keys that are not plain names', () => {
    expect(formatPath(['sources', 0, 'exclude', 2])).toBe('sources[0].exclude[2]');
    expect(formatPath(['destinations', 'my drive'])).toBe('destinations["my drive"]');
    expect(formatPath([])).toBe('');
  });
});

describe('suggestions', () => {
  it('editDistance counts swaps as one edit', () => {
    expect(editDistance('kitten', 'sitting')).toBe(3);
    expect(editDistance('priorty', 'priority')).toBe(1);
    expect(editDistance('retnetion', 'retention')).toBe(1);
    expect(editDistance('', 'abc')).toBe(3);
  });

  it.each([
    ['gdrive', ['local', 'google_drive', 'dropbox', 'onedrive'], 'google_drive'],
    ['one_drive', ['local', 'google_drive', 'dropbox', 'onedrive'], 'onedrive'],
    ['GoogleDrive', ['local', 'google_drive', 'dropbox', 'onedrive'], 'google_drive'],
    ['drop_box', ['local', 'google_drive', 'dropbox', 'onedrive'], 'dropbox'],
    ['keep_weekly', ['daily', 'weekly', 'monthly', 'yearly', 'keep_last'], 'weekly'],
    ['keeplast', ['daily', 'weekly', 'monthly', 'yearly', 'keep_last'], 'keep_last'],
    ['zzz', ['daily', 'weekly'], undefined],
    ['path', ['enabled', 'append_only'], undefined],
  ])('%s among %j → %s', (name, candidates, expected) => {
    expect(suggest(name, candidates)).toBe(expected);
  });
});
