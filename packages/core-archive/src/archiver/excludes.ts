/**
 * Exclude rules for backups, with restic's meaning: a pattern without `/` matches a name at any depth; a pattern
 * starting with `/` matches from the root; any other pattern with `/` matches a trailing run of path components.
 * `*` and `?` stay within one component, `**` crosses components, `[a-z]` is a class. An excluded directory is not
 * entered at all.
 */
import { readFileSync } from 'node:fs';
import { BackupError } from '../errors.ts';

export interface ExcludeOptions {
  /** glob patterns */
  patterns?: string[];
  /** directories that contain a file with one of these names are skipped whole (like CACHEDIR.TAG) */
  ifPresent?: string[];
  /** files larger than this many bytes are skipped */
  largerThan?: number;
}

export interface ExcludeMatcher {
  /** true when the absolute path (of a file or directory) is excluded by a pattern */
  matches(absPath: string): boolean;
  readonly ifPresent: readonly string[];
  readonly largerThan: number | undefined;
  /** the patterns as given, recorded in the snapshot */
  readonly patterns: readonly string[];
}

function globToRegexSource(glob: string): string {
  let out = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*') {
      if (glob[i + 1] === '*') {
        // `**/` matches zero or more whole components; a bare `**` matches anything.
        if (glob[i + 2] === '/') {
          out += '(?:.*/)?';
          i += 2;
        } else {
          out += '.*';
          i += 1;
        }
      } else {
        out += '[^/]*';
      }
    } else if (c === '?') {
      out += '[^/]';
    } else if (c === '[') {
      const end = glob.indexOf(']', i + 2);
      if (end < 0) {
        out += '\\[';
      } else {
        let cls = glob.slice(i + 1, end);
        if (cls.startsWith('!')) cls = '^' + cls.slice(1);
        out += '[' + cls.replace(/\\/g, '\\\\') + ']';
        i = end;
      }
    } else if (c === '\\' && i + 1 < glob.length) {
      out += '\\' + glob[++i];
    } else {
      out += c.replace(/[.+^${}()|\]\\/]/g, '\\$&');
    }
  }
  return out;
}

export function compilePattern(pattern: string): RegExp {
  let p = pattern.trim();
  if (p.length === 0) throw new BackupError('INVALID_ARGUMENT', 'an empty exclude pattern would match nothing: remove it');
  if (p.length > 1 && p.endsWith('/')) p = p.slice(0, -1);
  try {
    if (!p.includes('/')) return new RegExp(`(?:^|/)${globToRegexSource(p)}$`);
    if (p.startsWith('/')) return new RegExp(`^${globToRegexSource(p)}$`);
    return new RegExp(`(?:^|/)${globToRegexSource(p)}$`);
  } catch (e) {
    throw new BackupError('INVALID_ARGUMENT', `exclude pattern ${JSON.stringify(pattern)} is not a valid glob: ${(e as Error).message}`, { cause: e });
  }
}

/** Reads patterns from a file: one per line, blank lines and lines starting with # ignored. */
export function readExcludeFile(path: string): string[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new BackupError('INVALID_ARGUMENT', `cannot read the exclude file ${path}: ${(e as Error).message}`, { cause: e });
  }
  return text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l.length > 0 && !l.startsWith('#'));
}

export function createExcludeMatcher(options: ExcludeOptions = {}): ExcludeMatcher {
  const patterns = options.patterns ?? [];
  const regexes = patterns.map(compilePattern);
  return {
    matches: (absPath) => regexes.some((r) => r.test(absPath)),
    ifPresent: options.ifPresent ?? [],
    largerThan: options.largerThan,
    patterns,
  };
}
