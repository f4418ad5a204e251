/**
 * OneDrive's naming rules, applied to the repository folder a user configures, so that a root OneDrive would refuse
 * fails at once with a message that says what to change, instead of as a 400 somewhere inside a backup. The names the
 * backend itself adds (the type folders, two-digit fan-out folders and 64-digit hex ids) never break these rules.
 */

import { BackupError } from '@backup-manager/core-archive';

/** Longest path, from the drive root and without the leading "/", that OneDrive accepts. */
export const MAX_DRIVE_PATH_CHARS = 400;

/** The longest path a repository adds below its root folder: `/snapshots/<64 hex digits>`. */
export const LONGEST_REPOSITORY_SUFFIX_CHARS = '/snapshots/'.length + 64;

/** Characters OneDrive never allows in a file or folder name (control characters are refused as well). */
export const FORBIDDEN_NAME_CHARACTERS: readonly string[] = ['"', '*', ':', '<', '>', '?', '/', '\\', '|'];

const RESERVED_NAMES = new Set([
  '.lock', 'con', 'prn', 'aux', 'nul', 'desktop.ini',
  ...Array.from({ length: 10 }, (_, i) => `com${i}`),
  ...Array.from({ length: 10 }, (_, i) => `lpt${i}`),
]);

/** Why OneDrive would refuse `name` as a folder name, or undefined when it takes it. */
export function folderNameProblem(name: string): string | undefined {
  if (name === '' || name === '.' || name === '..') return 'empty, "." and ".." are not folder names';
  for (const char of name) {
    const code = char.codePointAt(0) ?? 0;
    if (code < 0x20 || code === 0x7f) return 'it contains a control character';
    if (FORBIDDEN_NAME_CHARACTERS.includes(char)) return `it contains ${JSON.stringify(char)}, which OneDrive does not allow (" * : < > ? / \\ | are refused)`;
  }
  const lower = name.toLowerCase();
  if (RESERVED_NAMES.has(lower)) return `"${name}" is a name OneDrive reserves`;
  if (lower.includes('_vti_')) return 'OneDrive reserves names containing "_vti_"';
  if (name.startsWith('~$')) return 'OneDrive reserves names starting with "~$"';
  if (name.trim() !== name) return 'it begins or ends with a space';
  if (name.endsWith('.')) return 'it ends with a period';
  return undefined;
}

/**
 * The segments of a repository folder path under the drive root (`backup-manager/repo1`, with or without slashes
 * around it), checked against OneDrive's rules and its 400-character path limit with room for the repository's own
 * names below it. Anything else is INVALID_ARGUMENT with what to change.
 */
export function rootSegments(root: string): string[] {
  const refuse = (why: string): never => {
    throw new BackupError(
      'INVALID_ARGUMENT',
      `the OneDrive repository folder ${JSON.stringify(root)} is not usable: ${why}; give a folder path under the drive root such as backup-manager/repo1`,
      typeof root === 'string' ? { subject: root } : {},
    );
  };
  if (typeof root !== 'string') return refuse('it is not a string');
  const trimmed = root.replace(/^\/+|\/+$/g, '');
  if (trimmed === '') return refuse('the drive root itself cannot hold a repository');
  const segments = trimmed.split('/');
  for (const segment of segments) {
    const problem = folderNameProblem(segment);
    if (problem !== undefined) refuse(`the part ${JSON.stringify(segment)} is not a valid OneDrive folder name (${problem})`);
  }
  const longest = trimmed.length + LONGEST_REPOSITORY_SUFFIX_CHARS;
  if (longest > MAX_DRIVE_PATH_CHARS) {
    refuse(
      `it is ${trimmed.length} characters long, and OneDrive allows ${MAX_DRIVE_PATH_CHARS} for a whole path, of which the repository needs ${LONGEST_REPOSITORY_SUFFIX_CHARS} below its folder; use at most ${MAX_DRIVE_PATH_CHARS - LONGEST_REPOSITORY_SUFFIX_CHARS} characters`,
    );
  }
  return segments;
}
