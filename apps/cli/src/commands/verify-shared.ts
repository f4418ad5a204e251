/**
 * What the verification commands share: the registration signature and the verification history file.
 */
import type { Command } from 'commander';
import { appendHistory } from '@backup-manager/verify';
import type { VerificationRecord } from '@backup-manager/verify';
import type { Runtime } from '../runtime.ts';

/** How cli.ts starts a command: builds the Runtime from the parsed options and runs `fn` with it. */
export type StartCommand = (cmd: Command, fn: (rt: Runtime) => Promise<number>) => void;

/** ~/.backup-manager/verify-history.jsonl */
export function historyFile(rt: Runtime): string {
  return rt.paths.verifyHistory;
}

/** Appends a record, telling the user (not failing the command) when the history cannot be written. */
export function recordHistory(rt: Runtime, record: VerificationRecord): void {
  try {
    appendHistory(historyFile(rt), record);
  } catch (e) {
    rt.note(`warning: could not append to ${historyFile(rt)}: ${(e as Error).message}`);
  }
}
