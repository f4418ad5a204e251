// Validation of route arguments the way Dropbox's Stone deserializer does it: a malformed argument is a 400 with a
// plain-text message naming the field, never a 409 route error.
import type { WriteModeArg } from './store.ts';

export type Args = Record<string, unknown>;

/** Thrown while reading arguments; the dispatcher turns it into a 400 "Error in call to API function ..." reply. */
export class BadInputError extends Error {
  override readonly name = 'BadInputError';
}

export interface PathPattern {
  regex: RegExp;
  /** The Stone pattern, quoted in the error message like Dropbox does. */
  text: string;
}

export const WRITE_PATH_OR_ID: PathPattern = {
  regex: /^(?:\/[\s\S]*|ns:[0-9]+(?:\/[\s\S]*)?|id:[\s\S]*)$/,
  text: '(/(.|[\\r\\n])*)|(ns:[0-9]+(/(.|[\\r\\n])*)?)|(id:.*)',
};
export const WRITE_PATH: PathPattern = {
  regex: /^(?:\/[\s\S]*|ns:[0-9]+(?:\/[\s\S]*)?)$/,
  text: '(/(.|[\\r\\n])*)|(ns:[0-9]+(/(.|[\\r\\n])*)?)',
};
export const READ_PATH: PathPattern = {
  regex: /^(?:\/[\s\S]*|id:[\s\S]*|rev:[0-9a-f]{9,}|ns:[0-9]+(?:\/[\s\S]*)?)$/,
  text: '(/(.|[\\r\\n])*|id:.*)|(rev:[0-9a-f]{9,})|(ns:[0-9]+(/(.|[\\r\\n])*)?)',
};
export const PATH_R_OR_ID: PathPattern = {
  regex: /^(?:(?:\/[\s\S]*)?|id:[\s\S]*|ns:[0-9]+(?:\/[\s\S]*)?)$/,
  text: '(/(.|[\\r\\n])*)?|id:.*|(ns:[0-9]+(/(.|[\\r\\n])*)?)',
};

export function asObject(where: string, value: unknown): Args {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new BadInputError(`${where}: expected a JSON object`);
  }
  return value as Args;
}

export function requiredString(where: string, args: Args, name: string, pattern?: PathPattern): string {
  const value = args[name];
  if (value === undefined || value === null) throw new BadInputError(`${where}: missing required field '${name}'`);
  return checkedString(where, name, value, pattern);
}

export function optionalString(where: string, args: Args, name: string, pattern?: PathPattern): string | undefined {
  const value = args[name];
  if (value === undefined || value === null) return undefined;
  return checkedString(where, name, value, pattern);
}

function checkedString(where: string, name: string, value: unknown, pattern: PathPattern | undefined): string {
  if (typeof value !== 'string') throw new BadInputError(`${where}: ${name}: expected string, got ${jsonType(value)}`);
  if (pattern && !pattern.regex.test(value)) {
    throw new BadInputError(`${where}: ${name}: '${value}' did not match pattern '${pattern.text}'`);
  }
  return value;
}

export function optionalBoolean(where: string, args: Args, name: string, fallback: boolean): boolean {
  const value = args[name];
  if (value === undefined || value === null) return fallback;
  if (typeof value !== 'boolean') throw new BadInputError(`${where}: ${name}: expected boolean, got ${jsonType(value)}`);
  return value;
}

export function optionalUint(where: string, args: Args, name: string, min: number, max: number): number | undefined {
  const value = args[name];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value)) {
    throw new BadInputError(`${where}: ${name}: expected integer, got ${jsonType(value)}`);
  }
  if (value < min) throw new BadInputError(`${where}: ${name}: ${value} is not greater than or equal to ${min}`);
  if (value > max) throw new BadInputError(`${where}: ${name}: ${value} is not less than or equal to ${max}`);
  return value;
}

export function requiredUint(where: string, args: Args, name: string): number {
  const value = optionalUint(where, args, name, 0, Number.MAX_SAFE_INTEGER);
  if (value === undefined) throw new BadInputError(`${where}: missing required field '${name}'`);
  return value;
}

export function requiredObject(where: string, args: Args, name: string): Args {
  const value = args[name];
  if (value === undefined || value === null) throw new BadInputError(`${where}: missing required field '${name}'`);
  return asObject(`${where}: ${name}`, value);
}

/** A union value's tag; a Void member may be written as the bare string ("add" ≡ {".tag":"add"}). */
export function unionTag(where: string, name: string, value: unknown): { tag: string; value: Args | undefined } {
  if (typeof value === 'string') return { tag: value, value: undefined };
  const object = asObject(`${where}: ${name}`, value);
  const tag = object['.tag'];
  if (typeof tag !== 'string') throw new BadInputError(`${where}: ${name}: missing '.tag' key`);
  return { tag, value: object };
}

/** CommitInfo.mode / UploadArg.mode (default add). */
export function writeMode(where: string, args: Args): WriteModeArg {
  const raw = args['mode'];
  if (raw === undefined || raw === null) return { kind: 'add' };
  const { tag, value } = unionTag(where, 'mode', raw);
  if (tag === 'add' || tag === 'overwrite') return { kind: tag };
  if (tag === 'update') {
    // `update` carries a Rev, so the bare-string shorthand is not allowed for it.
    const rev = value?.['update'];
    if (typeof rev !== 'string' || !/^[0-9a-f]{9,}$/.test(rev)) {
      throw new BadInputError(`${where}: mode: update: expected a rev (9+ lowercase hex digits)`);
    }
    return { kind: 'update', rev };
  }
  throw new BadInputError(`${where}: mode: unknown tag '${tag}'`);
}

/** common.DropboxTimestamp: `%Y-%m-%dT%H:%M:%SZ`. */
export function optionalTimestamp(where: string, args: Args, name: string): string | undefined {
  const value = optionalString(where, args, name);
  if (value !== undefined && !/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/.test(value)) {
    throw new BadInputError(`${where}: ${name}: timestamp '${value}' does not match format '%Y-%m-%dT%H:%M:%SZ'`);
  }
  return value;
}

function jsonType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'list';
  return typeof value === 'number' ? 'number' : typeof value;
}
