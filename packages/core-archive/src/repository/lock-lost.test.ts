// A holder whose lock refreshes keep failing must learn it before others may treat the lock as stale.
import { describe, expect, it } from 'vitest';
import { BackupError } from '../errors.ts';
import { MemoryBackend } from '../backend/memory.ts';
import { TEST_SCRYPT } from '../crypto/keys.ts';
import { FaultyBackend } from '../testing/faulty.ts';
import { LOCK_STALE_MS, lockRepository } from './lock.ts';
import { Repository } from './repository.ts';

describe('lock refresh failures', () => {
  it('signals `lost` once refreshes have failed for nearly the stale period, and not before', async () => {
    const faulty = new FaultyBackend(new MemoryBackend());
    let now = Date.parse('2026-11-22T00:00:00Z');
    const repo = await Repository.init(faulty, 'pw', { scrypt: TEST_SCRYPT, context: { now: () => new Date(now) } });
    const lock = await lockRepository(repo, { exclusive: false, operation: 'backup', refreshMs: 10 });
    faulty.addRule({ operation: 'save', type: 'locks', times: Infinity, error: new BackupError('UNAVAILABLE', 'service down') });
    now += 10 * 60 * 1000;
    await new Promise((r) => setTimeout(r, 60));
    expect(lock.lost.aborted).toBe(false);
    now += LOCK_STALE_MS;
    await new Promise((r) => setTimeout(r, 60));
    expect(lock.lost.aborted).toBe(true);
    expect((lock.lost.reason as BackupError).code).toBe('LOCKED');
    expect((lock.lost.reason as BackupError).message).toMatch(/could not be refreshed/);
    faulty.clearRules();
    await lock.release();
  });

  it('keeps the lock fresh while refreshes succeed', async () => {
    let now = Date.parse('2026-11-22T00:00:00Z');
    const repo = await Repository.init(new MemoryBackend(), 'pw', { scrypt: TEST_SCRYPT, context: { now: () => new Date(now) } });
    const lock = await lockRepository(repo, { exclusive: true, operation: 'prune', refreshMs: 10 });
    for (let i = 0; i < 5; i++) {
      now += 20 * 60 * 1000;
      await new Promise((r) => setTimeout(r, 30));
    }
    expect(lock.lost.aborted).toBe(false);
    expect(Date.parse(lock.doc.time)).toBeGreaterThan(Date.parse('2026-11-22T01:00:00Z'));
    await lock.release();
  });
});
