// A parser for the subset of Drive's `q` search language a backup tool uses ('<id>' in parents, name and
// mimeType comparisons, trashed, and/or/not, parentheses), compiled to a predicate over the fake's files.
// Anything outside the subset is rejected like an invalid query, so a tool cannot silently rely on it.

export interface QueryableFile {
  name: string;
  mimeType: string;
  parents: readonly string[];
  trashed: boolean;
  starred: boolean;
  createdTime: string;
  modifiedTime: string;
}

export type FilePredicate = (file: QueryableFile) => boolean;

export class QueryError extends Error {}

type Token =
  | { type: 'string'; value: string }
  | { type: 'word'; value: string }
  | { type: 'op'; value: string }
  | { type: 'paren'; value: '(' | ')' };

function tokenize(q: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < q.length) {
    const c = q[i] ?? '';
    if (/\s/.test(c)) {
      i += 1;
    } else if (c === "'") {
      let value = '';
      i += 1;
      for (;;) {
        if (i >= q.length) throw new QueryError('Unterminated string literal');
        const d = q[i] ?? '';
        if (d === '\\') {
          const next = q[i + 1];
          if (next === undefined) throw new QueryError('Dangling escape in string literal');
          value += next;
          i += 2;
        } else if (d === "'") {
          i += 1;
          break;
        } else {
          value += d;
          i += 1;
        }
      }
      tokens.push({ type: 'string', value });
    } else if (c === '(' || c === ')') {
      tokens.push({ type: 'paren', value: c });
      i += 1;
    } else if ('=!<>'.includes(c)) {
      const two = q.slice(i, i + 2);
      const op = ['!=', '<=', '>='].includes(two) ? two : c;
      if (op === '!') throw new QueryError("Unexpected '!'");
      tokens.push({ type: 'op', value: op });
      i += op.length;
    } else if (/[A-Za-z]/.test(c)) {
      const start = i;
      while (i < q.length && /[A-Za-z0-9_]/.test(q[i] ?? '')) i += 1;
      tokens.push({ type: 'word', value: q.slice(start, i) });
    } else {
      throw new QueryError(`Unexpected character ${JSON.stringify(c)}`);
    }
  }
  return tokens;
}

const STRING_FIELDS = ['name', 'mimeType'] as const;
const BOOLEAN_FIELDS = ['trashed', 'starred'] as const;
const TIME_FIELDS = ['createdTime', 'modifiedTime'] as const;

/**
 * Compiles a `q` string. `resolveId` maps aliases such as 'root' to real ids.
 * Throws QueryError when the query is outside the supported subset or malformed.
 */
export function compileQuery(q: string, resolveId: (id: string) => string): FilePredicate {
  const tokens = tokenize(q);
  let pos = 0;
  const peek = (): Token | undefined => tokens[pos];
  const isWord = (t: Token | undefined, w: string): boolean => t?.type === 'word' && t.value.toLowerCase() === w;

  const parseOr = (): FilePredicate => {
    const parts = [parseAnd()];
    while (isWord(peek(), 'or')) {
      pos += 1;
      parts.push(parseAnd());
    }
    return parts.length === 1 ? (parts[0] as FilePredicate) : (f) => parts.some((p) => p(f));
  };
  const parseAnd = (): FilePredicate => {
    const parts = [parseUnary()];
    while (isWord(peek(), 'and')) {
      pos += 1;
      parts.push(parseUnary());
    }
    return parts.length === 1 ? (parts[0] as FilePredicate) : (f) => parts.every((p) => p(f));
  };
  const parseUnary = (): FilePredicate => {
    const t = peek();
    if (isWord(t, 'not')) {
      pos += 1;
      const inner = parseUnary();
      return (f) => !inner(f);
    }
    if (t?.type === 'paren' && t.value === '(') {
      pos += 1;
      const inner = parseOr();
      const close = peek();
      if (close?.type !== 'paren' || close.value !== ')') throw new QueryError("Missing ')'");
      pos += 1;
      return inner;
    }
    return parseTerm();
  };
  const parseTerm = (): FilePredicate => {
    const first = tokens[pos];
    const second = tokens[pos + 1];
    const third = tokens[pos + 2];
    if (first === undefined || second === undefined || third === undefined) throw new QueryError('Incomplete term');
    pos += 3;
    if (first.type === 'string' && isWord(second, 'in')) {
      if (third.type !== 'word' || third.value !== 'parents') {
        throw new QueryError(`Unsupported collection in "'…' in ${third.value}"`);
      }
      const parentId = resolveId(first.value);
      return (f) => f.parents.includes(parentId);
    }
    if (first.type !== 'word') throw new QueryError('Expected a field name');
    const field = first.value;
    const op = second.type === 'op' ? second.value : isWord(second, 'contains') ? 'contains' : undefined;
    if (op === undefined) throw new QueryError(`Expected an operator after ${field}`);

    if ((STRING_FIELDS as readonly string[]).includes(field)) {
      if (third.type !== 'string') throw new QueryError(`${field} needs a quoted string`);
      const value = third.value;
      const get = (f: QueryableFile): string => (field === 'name' ? f.name : f.mimeType);
      if (op === '=') return (f) => get(f) === value;
      if (op === '!=') return (f) => get(f) !== value;
      if (op === 'contains') return (f) => get(f).toLowerCase().includes(value.toLowerCase());
      throw new QueryError(`Operator ${op} is not supported for ${field}`);
    }
    if ((BOOLEAN_FIELDS as readonly string[]).includes(field)) {
      if (third.type !== 'word' || !['true', 'false'].includes(third.value.toLowerCase())) {
        throw new QueryError(`${field} needs true or false`);
      }
      const value = third.value.toLowerCase() === 'true';
      const get = (f: QueryableFile): boolean => (field === 'trashed' ? f.trashed : f.starred);
      if (op === '=') return (f) => get(f) === value;
      if (op === '!=') return (f) => get(f) !== value;
      throw new QueryError(`Operator ${op} is not supported for ${field}`);
    }
    if ((TIME_FIELDS as readonly string[]).includes(field)) {
      if (third.type !== 'string' || Number.isNaN(Date.parse(third.value))) {
        throw new QueryError(`${field} needs a quoted RFC 3339 date-time`);
      }
      const value = Date.parse(third.value);
      const get = (f: QueryableFile): number => Date.parse(field === 'createdTime' ? f.createdTime : f.modifiedTime);
      const compare: Record<string, (a: number, b: number) => boolean> = {
        '=': (a, b) => a === b,
        '!=': (a, b) => a !== b,
        '<': (a, b) => a < b,
        '<=': (a, b) => a <= b,
        '>': (a, b) => a > b,
        '>=': (a, b) => a >= b,
      };
      const cmp = compare[op];
      if (cmp === undefined) throw new QueryError(`Operator ${op} is not supported for ${field}`);
      return (f) => cmp(get(f), value);
    }
    throw new QueryError(`Unsupported query term ${field}`);
  };

  if (tokens.length === 0) return () => true;
  const predicate = parseOr();
  if (pos !== tokens.length) throw new QueryError('Unexpected text after the query');
  return predicate;
}
