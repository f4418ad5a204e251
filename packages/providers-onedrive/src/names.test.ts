// The repository folder a user configures, checked against OneDrive's naming rules and path limit before any request.
import { describe, expect, it } from 'vitest';
import { LONGEST_REPOSITORY_SUFFIX_CHARS, MAX_DRIVE_PATH_CHARS, folderNameProblem, rootSegments } from './names.ts';

describe('rootSegments', () => {
  it.each([
    ['backup-manager/repo1', ['backup-manager', 'repo1']],
    ['/backup-manager/repo1/', ['backup-manager', 'repo1']],
    ['Backups 2024/#1 100%', ['Backups 2024', '#1 100%']],
    ['caf\u00e9/\u5099\u4efd', ['caf\u00e9', '\u5099\u4efd']],
  ])('accepts %j', (root, segments) => {
    expect(rootSegments(root)).toEqual(segments);
  });

  it.each([
    ['', 'drive root'],
    ['/', 'drive root'],
    ['a//b', 'not a valid OneDrive folder name'],
    ['a/../b', 'not a valid OneDrive folder name'],
    ['a/./b', 'not a valid OneDrive folder name'],
    ['bad:name', '":"'],
    ['a/b*c', '"*"'],
    ['a/what?', '"?"'],
    ['a\\b', '"\\\\"'],
    ['a/"quoted"', 'does not allow'],
    ['a/<x>', 'does not allow'],
    ['a/b|c', 'does not allow'],
    ['a/tab\there', 'control character'],
    ['CON', 'reserves'],
    ['a/lpt9', 'reserves'],
    ['a/desktop.ini', 'reserves'],
    ['a/.lock', 'reserves'],
    ['x_vti_y', '_vti_'],
    ['~$draft', '~$'],
    [' leading', 'space'],
    ['trailing ', 'space'],
    ['dots./x', 'period'],
  ])('refuses %j with INVALID_ARGUMENT saying why', (root, why) => {
    expect(() => rootSegments(root)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT', message: expect.stringContaining(why) }));
  });

  it('keeps room below the root for the longest repository path within the 400-character limit', () => {
    const room = MAX_DRIVE_PATH_CHARS - LONGEST_REPOSITORY_SUFFIX_CHARS;
    expect(room).toBe(325);
    const fits = `${'a'.repeat(200)}/${'b'.repeat(room - 201)}`;
    expect(rootSegments(fits)).toHaveLength(2);
    expect(`${fits}/snapshots/${'0'.repeat(64)}`.length).toBe(MAX_DRIVE_PATH_CHARS);
    expect(() => rootSegments(`${fits}x`)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('at most 325 characters') }));
  });

  it('finds nothing wrong with the names the backend itself adds', () => {
    for (const name of ['config', 'keys', 'locks', 'snapshots', 'index', 'data', '00', 'ff', 'a'.repeat(64)]) {
      expect(folderNameProblem(name), name).toBeUndefined();
    }
  });
});
