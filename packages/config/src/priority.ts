/**
 * The I/O priority that `process.io_priority` and `bam --io-priority` take, as people write it: "idle" or
 * "best-effort" with an optional level 0–7 ("best-effort:7"). Linux's two classes an unprivileged user may choose;
 * the realtime class is left out on purpose, since a backup in it could starve the rest of the machine.
 */
import { InvalidValueError } from './errors.ts';

/** Linux's I/O scheduling classes (ioprio_set(2)): idle gets the disk only when nobody else wants it. */
export type IoPriority = { class: 'idle' } | { class: 'best-effort'; level: number };

/** Lowest CPU priority a niceness may ask for; 0 is normal. Negative values (more priority) need privileges. */
export const MAX_NICE = 19;

const IO_PRIORITY_HELP = 'write "idle", "best-effort" or "best-effort:N" with N from 0 (highest) to 7 (lowest)';

function readIoPriority(text: string): IoPriority | string {
  const match = /^(idle|best-effort)(?::(\d+))?$/.exec(text.trim().toLowerCase());
  if (match === null) return `"${text}" is not an I/O priority; ${IO_PRIORITY_HELP}`;
  if (match[1] === 'idle') return match[2] === undefined ? { class: 'idle' } : `"${text}": the idle class has no levels; write "idle"`;
  // Linux's default level for a process at niceness 0: (0 + 20) / 5.
  const level = match[2] === undefined ? 4 : Number(match[2]);
  return level <= 7 ? { class: 'best-effort', level } : `"${text}" has level ${level}; ${IO_PRIORITY_HELP}`;
}

/** The message for a value that is not an I/O priority, undefined when it is one (for the schema). */
export function checkIoPriority(text: string): string | undefined {
  const read = readIoPriority(text);
  return typeof read === 'string' ? read : undefined;
}

/**
 * "idle" → { class: 'idle' }; "best-effort:7" → { class: 'best-effort', level: 7 }; "best-effort" is level 4.
 * @throws InvalidValueError naming what to write instead.
 */
export function parseIoPriority(text: string): IoPriority {
  const read = readIoPriority(text);
  if (typeof read === 'string') throw new InvalidValueError(read);
  return read;
}

/** The message for a niceness that is not an integer from 0 to 19, undefined when it is one. */
export function checkNice(value: number): string | undefined {
  return Number.isInteger(value) && value >= 0 && value <= MAX_NICE ? undefined : `must be an integer from 0 to ${MAX_NICE}, not ${value}`;
}
