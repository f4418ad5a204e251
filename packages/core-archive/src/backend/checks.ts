/**
 * Argument checks shared by the backends: a handle is validated before any path or key is built from it, and a
 * ranged read is resolved against the file size the same way everywhere, so every backend fails alike.
 */

import { BackupError } from '../errors.ts';
import { assertValidHandle, FILE_TYPES, handlePath } from './backend.ts';
import type { FileType, Handle } from './backend.ts';

/**
 * Rejects a malformed handle with INVALID_ARGUMENT (the TypeError from `assertValidHandle` is kept as the cause).
 * Also rejects a type outside FILE_TYPES, which `assertValidHandle` does not look at but which would become a
 * folder name.
 */
export function checkHandle(h: Handle): void {
  try {
    checkFileType(h.type);
    assertValidHandle(h);
  } catch (e) {
    if (e instanceof BackupError) throw e;
    throw new BackupError(
      'INVALID_ARGUMENT',
      `refusing to use the malformed repository file name ${JSON.stringify(String(h.name))} (type ${JSON.stringify(String(h.type))}); this is a bug in the caller, please report it`,
      { cause: e },
    );
  }
}

export function checkFileType(type: FileType): void {
  if (!FILE_TYPES.includes(type)) {
    throw new BackupError(
      'INVALID_ARGUMENT',
      `unknown repository file type ${JSON.stringify(String(type))}; this is a bug in the caller, please report it`,
    );
  }
}

/** The byte range a `load(h, offset, length)` call asks for, once checked against the file's size. */
export interface ResolvedRange {
  readonly offset: number;
  readonly length: number;
}

/**
 * Checks the arguments of a ranged read. Malformed numbers are INVALID_ARGUMENT; a range reaching past the end
 * of the file is INVALID_RANGE (permanent: the file is shorter than the caller believes, so retrying cannot help).
 */
export function resolveRange(h: Handle, size: number, offset = 0, length?: number): ResolvedRange {
  checkRangeArguments(h, offset, length);
  const wanted = length ?? size - offset;
  if (offset > size || offset + wanted > size) {
    const asked = length === undefined ? `from byte ${offset} to the end` : `bytes ${offset}..${offset + wanted}`;
    throw new BackupError(
      'INVALID_RANGE',
      `cannot read ${asked} of ${handlePath(h)}: the file has only ${size} bytes; the index and the file disagree, run a repository check`,
      { subject: handlePath(h) },
    );
  }
  return { offset, length: wanted };
}

/** Validates offset and length before the file is touched (used when the size is not known yet). */
export function checkRangeArguments(h: Handle, offset: number, length: number | undefined): void {
  const bad = (n: number) => !Number.isSafeInteger(n) || n < 0;
  if (bad(offset) || (length !== undefined && bad(length))) {
    throw new BackupError(
      'INVALID_ARGUMENT',
      `invalid read range offset=${String(offset)} length=${String(length)} for ${handlePath(h)}: both must be non-negative integers; this is a bug in the caller, please report it`,
      { subject: handlePath(h) },
    );
  }
}
