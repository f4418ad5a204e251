/**
 * Validation of config.json into a typed Config, with problems reported for people: each issue names the exact
 * key (`sources[0].priority`) and says what is wrong and what to write instead. Values of secret-bearing keys are
 * never repeated in a message.
 */
import { z } from 'zod';
import type { ConfigIssue } from './errors.ts';
import { findJsonSyntaxError, lineAndColumn } from './json-syntax.ts';
import { ConfigSchema } from './schema.ts';
import type { Config } from './schema.ts';

export type ParseResult = { ok: true; config: Config } | { ok: false; issues: ConfigIssue[] };

/** Keys whose values may hold a secret or a token (webhook URLs often embed one). */
const SENSITIVE_KEYS: ReadonlySet<string> = new Set(['client_secret', 'app_secret', 'password_command', 'webhook_url']);

/** Names people bring from other tools, mapped to the key meant here. */
const KEY_ALIASES: Readonly<Record<string, string>> = {
  gdrive: 'google_drive',
  keep_daily: 'daily',
  keep_weekly: 'weekly',
  keep_monthly: 'monthly',
  keep_yearly: 'yearly',
  keep_tag: 'keep_tags',
  compress: 'compression',
  password: 'password_file',
  cron: 'schedule',
  excludes: 'exclude',
  dest: 'destinations',
  targets: 'destinations',
};

/** Validates an already-parsed JSON value. Fills every default; never throws. */
export function parseConfig(input: unknown): ParseResult {
  // A per-parse error map that yields '' marks zod's own messages, which are replaced below; messages written in
  // the schema take precedence over it and are kept.
  const result = ConfigSchema.safeParse(input, { reportInput: true, error: () => '' });
  if (result.success) return { ok: true, config: result.data };
  return { ok: false, issues: result.error.issues.flatMap(toConfigIssues) };
}

/** Parses the text of config.json: JSON syntax errors come back as one issue with line and column. */
export function parseConfigText(text: string): ParseResult {
  const body = text.startsWith('\uFEFF') ? text.slice(1) : text;
  if (body.trim() === '') {
    return { ok: false, issues: [{ path: '', message: 'the file is empty; write {} to use every default' }] };
  }
  let data: unknown;
  try {
    data = JSON.parse(body);
  } catch (error) {
    return { ok: false, issues: [jsonSyntaxIssue(body, error)] };
  }
  return parseConfig(data);
}

function jsonSyntaxIssue(text: string, error: unknown): ConfigIssue {
  const found = findJsonSyntaxError(text);
  if (found !== undefined) {
    const { line, column, message } = found;
    return { path: '', line, column, message: `invalid JSON at line ${line}, column ${column}: ${message}` };
  }
  // The scanner and JSON.parse disagree (should not happen): report V8's position but not its text, which may quote
  // the file.
  const position = /at position (\d+)/.exec(error instanceof Error ? error.message : '')?.[1];
  const { line, column } = lineAndColumn(text, position === undefined ? 0 : Number(position));
  return { path: '', line, column, message: `invalid JSON at line ${line}, column ${column}` };
}

/** `sources[0].priority`; keys that are not plain names are quoted: `exclude["my key"]`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let text = '';
  for (const segment of path) {
    if (typeof segment === 'number') text += `[${segment}]`;
    else if (typeof segment === 'string' && /^[A-Za-z_$][\w$]*$/.test(segment)) text += text === '' ? segment : `.${segment}`;
    else text += `[${JSON.stringify(String(segment))}]`;
  }
  return text;
}

/** Issues as a list for people, one per line: `- sources[0].priority: must be one of …`. */
export function formatIssues(issues: readonly ConfigIssue[]): string {
  return issues.map((issue) => `- ${issue.path === '' ? '(config)' : issue.path}: ${issue.message}`).join('\n');
}

function toConfigIssues(issue: z.core.$ZodIssue): ConfigIssue[] {
  if (issue.code === 'unrecognized_keys') {
    const known = knownKeysAt(issue.path);
    return issue.keys.map((key) => ({ path: formatPath([...issue.path, key]), message: unknownKeyMessage(key, known) }));
  }
  return [{ path: formatPath(issue.path), message: issue.message !== '' ? issue.message : describeIssue(issue) }];
}

function describeIssue(issue: z.core.$ZodIssue): string {
  const key = issue.path.at(-1);
  const sensitive = typeof key === 'string' && SENSITIVE_KEYS.has(key);
  switch (issue.code) {
    case 'invalid_type': {
      if (issue.input === undefined) {
        const description = descriptionAt(issue.path);
        const name = typeof key === 'string' ? `"${key}"` : 'a value';
        return `is required; add ${name}${description === undefined ? '' : ` (${lowerFirst(description)})`}`;
      }
      return `must be ${expectedText(issue.expected)}; got ${describeValue(issue.input, sensitive)}${typeHint(issue)}`;
    }
    case 'invalid_value': {
      const got = describeValue(issue.input, sensitive);
      if (issue.values.length === 1) {
        const only = issue.values[0];
        const unquote = typeof issue.input === 'string' && typeof only !== 'string' && issue.input === String(only);
        return `must be ${JSON.stringify(only)}; got ${got}${unquote ? ` (write ${String(only)} without quotes)` : ''}`;
      }
      const options = issue.values.map(String);
      const suggestion = typeof issue.input === 'string' ? suggest(issue.input, options) : undefined;
      return `must be one of ${options.join(', ')}; got ${got}${suggestion === undefined ? '' : ` (did you mean "${suggestion}"?)`}`;
    }
    case 'too_small':
    case 'too_big': {
      const bound = issue.code === 'too_small' ? issue.minimum : issue.maximum;
      if (issue.origin === 'string' && issue.code === 'too_small' && Number(bound) === 1) return 'must not be empty';
      if (issue.origin === 'array') {
        return `must have ${issue.code === 'too_small' ? 'at least' : 'at most'} ${bound} item${Number(bound) === 1 ? '' : 's'}`;
      }
      const relation =
        issue.code === 'too_small'
          ? issue.inclusive === false
            ? 'greater than'
            : 'at least'
          : issue.inclusive === false
            ? 'less than'
            : 'at most';
      return `must be ${relation} ${bound}; got ${describeValue(issue.input, sensitive)}`;
    }
    case 'invalid_format':
      return `is not a valid ${issue.format}${sensitive ? '' : `; got ${describeValue(issue.input, sensitive)}`}`;
    case 'not_multiple_of':
      return `must be a multiple of ${issue.divisor}`;
    default:
      return 'is not valid here';
  }
}

const EXPECTED_TEXT: Readonly<Record<string, string>> = {
  string: 'text in double quotes',
  number: 'a number',
  int: 'a whole number',
  boolean: 'true or false',
  array: 'a list [ … ]',
  object: 'an object { … }',
  null: 'null',
};

function expectedText(expected: string): string {
  return EXPECTED_TEXT[expected] ?? expected;
}

const SIZE_KEYS: ReadonlySet<string> = new Set(['exclude_larger_than', 'pack_size']);
const DURATION_KEYS: ReadonlySet<string> = new Set(['rpo', 'rto', 'keep_within']);

/** Extra advice for the type mistakes people make most. */
function typeHint(issue: z.core.$ZodIssueInvalidType): string {
  const { input, expected, path } = issue;
  const key = path.at(-1);
  if (input === null && hasDefault(path)) return ' (leave the key out to use the default)';
  if (expected === 'string' && typeof input === 'number') {
    // A bare number in a size or duration field has no unit; quoting it as-is would silently mean bytes.
    if (typeof key === 'string' && SIZE_KEYS.has(key)) return ' (write a size with a unit in quotes, e.g. "2GiB")';
    if (typeof key === 'string' && DURATION_KEYS.has(key)) return ' (write a duration with a unit in quotes, e.g. "24h")';
  }
  if ((expected === 'number' || expected === 'int') && typeof input === 'string' && /^-?\d+(\.\d+)?$/.test(input.trim())) {
    return ` (write ${input.trim()} without quotes)`;
  }
  if (expected === 'boolean' && (input === 'true' || input === 'false')) return ` (write ${input} without quotes)`;
  if (expected === 'array' && typeof input === 'string') return ` (write [${JSON.stringify(input)}])`;
  if (expected === 'object' && typeof input === 'string' && path.length === 2 && path[0] === 'sources') {
    return ` (each source is an object: write { "path": ${JSON.stringify(input)} })`;
  }
  if (expected === 'int' && typeof input === 'number') return ' (no fraction)';
  return '';
}

/** A short, safe rendering of a value for a message. */
function describeValue(value: unknown, sensitive: boolean): string {
  if (typeof value === 'string') {
    if (sensitive) return 'a value that is not shown here';
    const shown = value.length > 60 ? `${value.slice(0, 57)}…` : value;
    return JSON.stringify(shown);
  }
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'number' || typeof value === 'boolean') return sensitive ? `a ${typeof value}` : String(value);
  return typeof value;
}

function lowerFirst(text: string): string {
  return text.charAt(0).toLowerCase() + text.slice(1).replace(/\.$/, '');
}

function unknownKeyMessage(key: string, known: readonly string[]): string {
  const suggestion = suggest(key, known);
  if (suggestion !== undefined) return `unknown key "${key}"; did you mean "${suggestion}"?`;
  const listed = known.filter((name) => !name.startsWith('$'));
  return listed.length === 0
    ? `unknown key "${key}"; remove it`
    : `unknown key "${key}"; the keys allowed here are ${listed.join(', ')}`;
}

// ---- walking the schema, for the keys allowed at a path and a field's description ----

type Wrapper = z.ZodDefault | z.ZodPrefault | z.ZodOptional | z.ZodNullable;

function isWrapper(schema: z.core.$ZodType): schema is Wrapper {
  return (
    schema instanceof z.ZodDefault ||
    schema instanceof z.ZodPrefault ||
    schema instanceof z.ZodOptional ||
    schema instanceof z.ZodNullable
  );
}

/** Strips default, prefault, optional and nullable wrappers down to the object, array or leaf inside. */
function unwrap(schema: z.core.$ZodType): z.core.$ZodType {
  let current = schema;
  while (isWrapper(current)) current = current.unwrap();
  return current;
}

/** The schemas met along `path`, outermost first, or undefined when the path leaves the schema. */
function schemasAlong(path: readonly PropertyKey[]): z.core.$ZodType[] | undefined {
  const along: z.core.$ZodType[] = [ConfigSchema];
  let current: z.core.$ZodType = ConfigSchema;
  for (const segment of path) {
    const inner = unwrap(current);
    let next: z.core.$ZodType | undefined;
    if (inner instanceof z.ZodObject && typeof segment === 'string') next = inner.shape[segment];
    else if (inner instanceof z.ZodArray && typeof segment === 'number') next = inner.element;
    if (next === undefined) return undefined;
    along.push(next);
    current = next;
  }
  return along;
}

function hasDefault(path: readonly PropertyKey[]): boolean {
  const last = schemasAlong(path)?.at(-1);
  return last instanceof z.ZodDefault || last instanceof z.ZodPrefault;
}

function knownKeysAt(path: readonly PropertyKey[]): string[] {
  const last = schemasAlong(path)?.at(-1);
  const inner = last === undefined ? undefined : unwrap(last);
  return inner instanceof z.ZodObject ? Object.keys(inner.shape) : [];
}

/** The description of the field at `path`, found on it or on any wrapper around it. */
function descriptionAt(path: readonly PropertyKey[]): string | undefined {
  let current = schemasAlong(path)?.at(-1);
  while (current !== undefined) {
    const description = z.globalRegistry.get(current)?.description;
    if (description !== undefined) return description;
    current = isWrapper(current) ? current.unwrap() : undefined;
  }
  return undefined;
}

// ---- "did you mean" ----

function normalise(name: string): string {
  return name.toLowerCase().replace(/[-_\s]/g, '');
}

/** Optimal string alignment distance: insertions, deletions, substitutions and adjacent swaps. */
export function editDistance(a: string, b: string): number {
  const rows = a.length + 1;
  const columns = b.length + 1;
  const d: number[] = new Array<number>(rows * columns).fill(0);
  const at = (i: number, j: number): number => d[i * columns + j] ?? 0;
  for (let i = 0; i < rows; i += 1) d[i * columns] = i;
  for (let j = 0; j < columns; j += 1) d[j] = j;
  for (let i = 1; i < rows; i += 1) {
    for (let j = 1; j < columns; j += 1) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, at(i - 2, j - 2) + 1);
      d[i * columns + j] = best;
    }
  }
  return at(rows - 1, columns - 1);
}

function isAbbreviationOf(short: string, long: string): boolean {
  if (short.length < 3 || short[0] !== long[0] || short.length * 2 < long.length) return false;
  let index = 0;
  for (const char of long) if (char === short[index]) index += 1;
  return index === short.length;
}

/**
 * The candidate `name` most likely meant, or undefined when none is close: a known alias, the same name spelt
 * with other case or separators, a small edit distance (about one edit per three letters) or an abbreviation
 * ("gdrive" for "google_drive").
 */
export function suggest(name: string, candidates: readonly string[]): string | undefined {
  const alias = KEY_ALIASES[name.toLowerCase()] ?? KEY_ALIASES[name.toLowerCase().replace(/-/g, '_')];
  if (alias !== undefined && candidates.includes(alias)) return alias;
  const wanted = normalise(name);
  let best: { candidate: string; score: number } | undefined;
  for (const candidate of candidates) {
    const normalised = normalise(candidate);
    const distance = editDistance(wanted, normalised);
    const allowed = Math.max(1, Math.floor(Math.max(wanted.length, normalised.length) / 3));
    let score = Number.POSITIVE_INFINITY;
    if (distance <= allowed) score = distance;
    else if (isAbbreviationOf(wanted, normalised)) score = allowed + 1;
    if (score < (best?.score ?? Number.POSITIVE_INFINITY)) best = { candidate, score };
  }
  return best?.candidate;
}
