// The naming rules OneDrive enforces when an item is created or renamed: forbidden characters, reserved names,
// leading/trailing blanks and trailing dots, and the 400-character limit on the whole decoded path. Each rule
// maps to the 400 invalidRequest answer Graph gives, with the specific OneDrive code in innerError.

/** Characters never allowed in a OneDrive name (plus the C0 control characters). */
export const FORBIDDEN_NAME_CHARACTERS = ['"', '*', ':', '<', '>', '?', '/', '\\', '|'] as const;

/** Longest decoded path (from the drive root, without the leading '/') OneDrive accepts. */
export const MAX_PATH_LENGTH = 400;

const RESERVED_NAMES = new Set([
  '.lock',
  'con',
  'prn',
  'aux',
  'nul',
  'desktop.ini',
  ...Array.from({ length: 10 }, (_, i) => `com${i}`),
  ...Array.from({ length: 10 }, (_, i) => `lpt${i}`),
]);

export interface NameProblem {
  innerCode: 'nameContainsInvalidCharacters' | 'invalidPath' | 'pathIsTooLong';
  message: string;
}

/** Why OneDrive would refuse `name` for a new file or folder, or undefined when it is acceptable. */
export function nameProblem(name: string): NameProblem | undefined {
  if (name.length === 0 || name === '.' || name === '..') {
    return { innerCode: 'invalidPath', message: 'The name of a file or folder cannot be empty, "." or "..".' };
  }
  for (const char of name) {
    const code = char.codePointAt(0) ?? 0;
    if (code < 0x20 || (FORBIDDEN_NAME_CHARACTERS as readonly string[]).includes(char)) {
      return {
        innerCode: 'nameContainsInvalidCharacters',
        message: `The name "${printable(name)}" contains characters OneDrive does not allow (" * : < > ? / \\ | and control characters).`,
      };
    }
  }
  const lower = name.toLowerCase();
  if (RESERVED_NAMES.has(lower) || lower.includes('_vti_') || name.startsWith('~$')) {
    return { innerCode: 'invalidPath', message: `"${name}" is a reserved name in OneDrive; choose another name.` };
  }
  if (name.trim() !== name) {
    return { innerCode: 'invalidPath', message: 'OneDrive names cannot begin or end with a space.' };
  }
  if (name.endsWith('.')) {
    return { innerCode: 'invalidPath', message: 'OneDrive names cannot end with a period.' };
  }
  return undefined;
}

/** The problem with a whole path (segments from the root), checking every segment and the total length. */
export function pathProblem(segments: readonly string[]): NameProblem | undefined {
  for (const segment of segments) {
    const problem = nameProblem(segment);
    if (problem !== undefined) return problem;
  }
  const length = segments.join('/').length;
  if (length > MAX_PATH_LENGTH) {
    return {
      innerCode: 'pathIsTooLong',
      message: `The decoded path is ${length} characters long; OneDrive allows at most ${MAX_PATH_LENGTH}.`,
    };
  }
  return undefined;
}

function printable(name: string): string {
  // Control characters would corrupt a log line or a JSON viewer; show their code instead.
  return name.replace(/[\u0000-\u001f]/gu, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
