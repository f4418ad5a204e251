/**
 * Finds the first JSON syntax error in a text and says, in plain words, how to fix it. JSON.parse's messages differ
 * between Node versions, sometimes lack a position and sometimes quote the file (which may hold a secret), so
 * parseConfigText uses this scanner for the message and position instead.
 */

export interface JsonSyntaxError {
  /** 0-based UTF-16 offset of the problem. */
  offset: number;
  /** 1-based line and column of `offset`. */
  line: number;
  column: number;
  message: string;
}

const MAX_DEPTH = 512;
const VALUE_HELP = 'a value (a string in double quotes, a number, true, false, null, {…} or […])';

class Stop extends Error {
  readonly offset: number;
  constructor(offset: number, message: string) {
    super(message);
    this.offset = offset;
  }
}

class Scanner {
  readonly text: string;
  index = 0;

  constructor(text: string) {
    this.text = text;
  }

  fail(message: string, offset: number = this.index): never {
    throw new Stop(offset, message);
  }

  skipSpace(): void {
    for (;;) {
      const char = this.text[this.index];
      if (char === ' ' || char === '\t' || char === '\n' || char === '\r') {
        this.index += 1;
      } else if (char === '/' && (this.text[this.index + 1] === '/' || this.text[this.index + 1] === '*')) {
        this.fail('JSON does not allow comments; delete the comment');
      } else {
        return;
      }
    }
  }

  value(depth: number): void {
    if (depth > MAX_DEPTH) this.fail(`nesting is deeper than ${MAX_DEPTH} levels`);
    const char = this.text[this.index];
    if (char === undefined) this.fail(`the text ends where ${VALUE_HELP} should be`);
    if (char === '{') return this.object(depth);
    if (char === '[') return this.array(depth);
    if (char === '"') return this.string();
    if (char === '-' || (char >= '0' && char <= '9')) return this.number();
    if (char === "'") this.fail('strings need double quotes ("…"), not single quotes');
    const word = /^[A-Za-z_$][\w$]*/.exec(this.text.slice(this.index, this.index + 64))?.[0];
    if (word === 'true' || word === 'false' || word === 'null') {
      this.index += word.length;
      return;
    }
    if (word !== undefined && ['true', 'false', 'null'].includes(word.toLowerCase())) {
      this.fail(`write ${word.toLowerCase()} in lower case`);
    }
    if (word !== undefined) this.fail(`unexpected word; text values need double quotes ("…"), or write true, false or null`);
    this.fail(`unexpected character "${char}"; expected ${VALUE_HELP}`);
  }

  object(depth: number): void {
    this.index += 1;
    this.skipSpace();
    if (this.text[this.index] === '}') {
      this.index += 1;
      return;
    }
    for (;;) {
      this.key();
      this.skipSpace();
      if (this.text[this.index] !== ':') this.fail('expected ":" after the property name');
      this.index += 1;
      this.skipSpace();
      this.value(depth + 1);
      this.skipSpace();
      const char = this.text[this.index];
      if (char === '}') {
        this.index += 1;
        return;
      }
      if (char === ',') {
        const comma = this.index;
        this.index += 1;
        this.skipSpace();
        if (this.text[this.index] === '}') this.fail('remove the comma before "}" (JSON allows no trailing comma)', comma);
        continue;
      }
      if (char === undefined) this.fail('the text ends inside an object; a closing "}" is missing');
      if (char === '"') this.fail('a comma is missing between two properties; add "," after the previous value');
      this.fail(`unexpected character "${char}"; expected "," or "}" after the value`);
    }
  }

  key(): void {
    const char = this.text[this.index];
    if (char === '"') return this.string();
    if (char === undefined) this.fail('the text ends inside an object; a closing "}" is missing');
    if (char === "'") this.fail('property names need double quotes ("…"), not single quotes');
    if (/[A-Za-z_$]/.test(char)) this.fail('property names need double quotes, e.g. "sources"');
    this.fail(`unexpected character "${char}"; expected a property name in double quotes or "}"`);
  }

  array(depth: number): void {
    this.index += 1;
    this.skipSpace();
    if (this.text[this.index] === ']') {
      this.index += 1;
      return;
    }
    for (;;) {
      this.value(depth + 1);
      this.skipSpace();
      const char = this.text[this.index];
      if (char === ']') {
        this.index += 1;
        return;
      }
      if (char === ',') {
        const comma = this.index;
        this.index += 1;
        this.skipSpace();
        if (this.text[this.index] === ']') this.fail('remove the comma before "]" (JSON allows no trailing comma)', comma);
        continue;
      }
      if (char === undefined) this.fail('the text ends inside a list; a closing "]" is missing');
      this.fail(`unexpected character "${char}"; expected "," or "]" after the list item (is a comma missing?)`);
    }
  }

  string(): void {
    const start = this.index;
    this.index += 1;
    for (;;) {
      const char = this.text[this.index];
      if (char === undefined) this.fail('this string has no closing double quote', start);
      if (char === '"') {
        this.index += 1;
        return;
      }
      if (char < ' ') this.fail('a string cannot contain a line break or tab; write \\n or \\t, or close the quote');
      if (char === '\\') {
        const escaped = this.text[this.index + 1];
        if (escaped === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(this.text.slice(this.index + 2, this.index + 6))) {
            this.fail('"\\u" must be followed by 4 hex digits');
          }
          this.index += 6;
          continue;
        }
        if (escaped === undefined || !'"\\/bfnrt'.includes(escaped)) {
          this.fail('invalid escape; write a backslash as \\\\ (Windows paths: "C:\\\\Users" or "C:/Users")');
        }
        this.index += 2;
        continue;
      }
      this.index += 1;
    }
  }

  number(): void {
    const match = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(this.text.slice(this.index, this.index + 400));
    if (match === null) this.fail('invalid number; write digits such as 7, 0.5 or -1');
    this.index += match[0].length;
    if (/[0-9.]/.test(this.text[this.index] ?? '')) this.fail('invalid number: no leading zeros, and digits after a "."');
  }
}

/** 1-based line and column of a 0-based offset. */
export function lineAndColumn(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  for (let index = 0; index < offset && index < text.length; index += 1) {
    if (text[index] === '\n') {
      line += 1;
      lineStart = index + 1;
    }
  }
  return { line, column: offset - lineStart + 1 };
}

/** The first syntax error in `text`, or undefined when it is valid JSON. */
export function findJsonSyntaxError(text: string): JsonSyntaxError | undefined {
  const scanner = new Scanner(text);
  try {
    scanner.skipSpace();
    scanner.value(0);
    scanner.skipSpace();
    if (scanner.index < text.length) scanner.fail('unexpected text after the end of the JSON value; is a "{" or "," missing?');
    return undefined;
  } catch (error) {
    if (!(error instanceof Stop)) throw error;
    return { offset: error.offset, ...lineAndColumn(text, error.offset), message: error.message };
  }
}
