/**
 * `bam key list|add|remove|passwd`: several passwords can open one repository; each is a key file that wraps the
 * same master key.
 */
import fs from 'node:fs';
import { BackupError, listLocks, lockRepository } from '@backup-manager/core-archive';
import { formatTime, table } from '../format.ts';
import { promptHidden } from '../prompt.ts';
import type { Runtime } from '../runtime.ts';

export interface KeyFlags {
  newPasswordFile?: string;
}

async function newPassword(rt: Runtime, flags: KeyFlags): Promise<string> {
  if (flags.newPasswordFile) {
    const p = fs.readFileSync(flags.newPasswordFile, 'utf8').replace(/\r?\n$/, '');
    if (p === '') throw new BackupError('INVALID_ARGUMENT', `the new password file ${flags.newPasswordFile} is empty`);
    return p;
  }
  const env = rt.env.BACKUP_MANAGER_NEW_PASSWORD;
  if (env) return env;
  if (rt.streams.stdin.isTTY) {
    const a = await promptHidden(rt, 'new password: ');
    const b = await promptHidden(rt, 'enter the new password again: ');
    if (a !== b) throw new BackupError('INVALID_ARGUMENT', 'the two passwords differ: nothing changed');
    if (a === '') throw new BackupError('INVALID_ARGUMENT', 'an empty password is not allowed');
    return a;
  }
  throw new BackupError('INVALID_ARGUMENT', 'give the new password with --new-password-file FILE or BACKUP_MANAGER_NEW_PASSWORD (no terminal to ask on)');
}

export async function keyCommand(rt: Runtime, action: string, id: string | undefined, flags: KeyFlags): Promise<number> {
  const repo = await rt.openRepository();
  try {
    switch (action) {
      case 'list': {
        const keys = await repo.listKeys();
        if (rt.json) rt.printJson(keys);
        else rt.print(table(['', 'ID', 'User', 'Host', 'Created'], keys.map((k) => [k.current ? '*' : '', k.id.slice(0, 10), k.username, k.hostname, formatTime(k.created)])));
        return 0;
      }
      case 'add': {
        const newId = await repo.addKey(await newPassword(rt, flags));
        rt.printJson({ type: 'key-added', id: newId });
        rt.print(`added key ${newId.slice(0, 10)}`);
        return 0;
      }
      case 'remove': {
        if (!id) throw new BackupError('INVALID_ARGUMENT', 'key remove needs the id of the key to remove (see `bam key list`)');
        const lock = await lockRepository(repo, { exclusive: true, operation: 'key remove' });
        try {
          const removed = await repo.removeKey(id);
          rt.printJson({ type: 'key-removed', id: removed });
          rt.print(`removed key ${removed.slice(0, 10)}`);
        } finally {
          await lock.release();
        }
        return 0;
      }
      case 'passwd': {
        const lock = await lockRepository(repo, { exclusive: true, operation: 'key passwd' });
        try {
          const newId = await repo.changePassword(await newPassword(rt, flags));
          rt.printJson({ type: 'key-changed', id: newId });
          rt.print(`changed the password: key ${newId.slice(0, 10)} replaces the old one`);
          if (rt.paths.password && fs.existsSync(rt.paths.password) && !rt.options.passwordFile && !rt.env.BACKUP_MANAGER_PASSWORD) {
            rt.note(`note: ${rt.paths.password} still holds the old password; update it (and your other copy) to the new one`);
          }
        } finally {
          await lock.release();
        }
        return 0;
      }
      default:
        throw new BackupError('INVALID_ARGUMENT', `unknown key action ${action}: use list, add, remove or passwd`);
    }
  } finally {
    repo.close();
  }
}

export async function unlockCommand(rt: Runtime, flags: { removeAll?: boolean }): Promise<number> {
  const repo = await rt.openRepository();
  try {
    const before = await listLocks(repo);
    const { removeLocks } = await import('@backup-manager/core-archive');
    const removed = await removeLocks(repo, flags.removeAll === true);
    const kept = before.length - removed.length;
    rt.printJson({ type: 'unlock', removed: removed.map((l) => ({ id: l.id, reason: l.reason, ...l.doc })), remaining: kept });
    rt.print(`removed ${removed.length} lock(s)${kept > 0 ? `; ${kept} lock(s) of running processes kept (use --remove-all to remove them too)` : ''}`);
    return 0;
  } finally {
    repo.close();
  }
}
