// State-folder resolution, with the environment and home directory injected.
import { describe, expect, it } from 'vitest';
import { expandTilde, isAbsoluteOrTilde, resolveHome, statePaths } from './paths.ts';

describe('resolveHome', () => {
  it('defaults to ~/.backup-manager', () => {
    expect(resolveHome({}, '/home/ann')).toBe('/home/ann/.backup-manager');
  });

  it('uses BACKUP_MANAGER_HOME when set, expanding ~ and resolving relative paths', () => {
    expect(resolveHome({ BACKUP_MANAGER_HOME: '/srv/bam' }, '/home/ann')).toBe('/srv/bam');
    expect(resolveHome({ BACKUP_MANAGER_HOME: '~/alt' }, '/home/ann')).toBe('/home/ann/alt');
    expect(resolveHome({ BACKUP_MANAGER_HOME: 'rel' }, '/home/ann')).toBe(`${process.cwd()}/rel`);
  });

  it('ignores an empty BACKUP_MANAGER_HOME', () => {
    expect(resolveHome({ BACKUP_MANAGER_HOME: ' ' }, '/home/ann')).toBe('/home/ann/.backup-manager');
  });
});

describe('expandTilde', () => {
  it.each([
    ['~', '/home/ann'],
    ['~/Documents', '/home/ann/Documents'],
    ['~/', '/home/ann'],
    ['/etc', '/etc'],
    ['~bob/x', '~bob/x'],
    ['a/~/b', 'a/~/b'],
  ])('%s → %s', (input, output) => {
    expect(expandTilde(input, '/home/ann')).toBe(output);
  });
});

describe('isAbsoluteOrTilde', () => {
  it.each([
    ['/srv', true],
    ['~', true],
    ['~/x', true],
    ['x', false],
    ['./x', false],
    ['~bob', false],
    ['', false],
  ])('%j → %s', (input, expected) => {
    expect(isAbsoluteOrTilde(input)).toBe(expected);
  });
});

describe('statePaths', () => {
  it('names every state file', () => {
    expect(statePaths('/h')).toEqual({
      home: '/h',
      config: '/h/config.json',
      backups: '/h/backups',
      backupLog: '/h/backup.log',
      alertsLog: '/h/alerts.log',
      metricsLog: '/h/storage-metrics.log',
      password: '/h/password',
      verifyHistory: '/h/verify-history.jsonl',
      cache: '/h/cache',
    });
  });
});
