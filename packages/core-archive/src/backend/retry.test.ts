import { describe, expect, it } from 'vitest';
import { BackupError } from '../errors.ts';
import type { ErrorCode } from '../errors.ts';
import { FaultyBackend } from '../testing/faulty.ts';
import type { FileInfo, FileType, Handle } from './backend.ts';
import { MemoryBackend } from './memory.ts';
import { RetryBackend } from './retry.ts';
import type { RetryEvent, RetryOptions } from './retry.ts';

const id = (n: number) => n.toString(16).padStart(64, '0');
const h = (n: number): Handle => ({ type: 'data', name: id(n) });
const transient = () => new BackupError('UNAVAILABLE', 'server said 503');

function harness(inner: MemoryBackend | FaultyBackend, options: RetryOptions = {}) {
  const delays: number[] = [];
  const events: RetryEvent[] = [];
  const backend = new RetryBackend(inner, {
    sleep: async (ms) => {
      delays.push(ms);
    },
    random: () => 0.5,
    onRetry: (e) => events.push(e),
    ...options,
  });
  return { backend, delays, events };
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => expect.fail('expected a failure'),
    (e: unknown) => e,
  );
}

describe('RetryBackend', () => {
  it('backs off exponentially with full jitter until the operation succeeds', async () => {
    const memory = new MemoryBackend();
    await memory.save(h(1), new Uint8Array([42]));
    const faulty = new FaultyBackend(memory);
    faulty.addRule({ operation: 'load', times: 5, error: transient });
    const { backend, delays, events } = harness(faulty, { baseDelayMs: 100, maxDelayMs: 100_000 });
    expect(await backend.load(h(1))).toEqual(new Uint8Array([42]));
    expect(delays).toEqual([50, 100, 200, 400, 800]);
    expect(events.map((e) => e.attempt)).toEqual([1, 2, 3, 4, 5]);
    expect(events[0]).toMatchObject({ operation: 'load', handle: h(1), delayMs: 50 });
    expect(events[0]?.error.code).toBe('UNAVAILABLE');
    expect(faulty.calls.filter((c) => c.operation === 'load')).toHaveLength(6);
  });

  it('draws each delay uniformly below the ceiling', async () => {
    const faulty = new FaultyBackend(new MemoryBackend());
    faulty.addRule({ operation: 'stat', times: 3, error: transient });
    const draws = [0, 0.25, 0.999];
    const { backend, delays } = harness(faulty, { baseDelayMs: 1000, random: () => draws.shift() ?? 0 });
    await rejection(backend.stat(h(1)));
    expect(delays).toEqual([0, 500, 3996]);
  });

  it('caps the backoff at maxDelayMs', async () => {
    const faulty = new FaultyBackend(new MemoryBackend());
    faulty.addRule({ operation: 'stat', error: transient });
    const { backend, delays } = harness(faulty, { baseDelayMs: 1000, maxDelayMs: 3000, random: () => 0.999, maxAttempts: 6 });
    await rejection(backend.stat(h(1)));
    expect(delays).toEqual([999, 1998, 2997, 2997, 2997]);
  });

  it('waits at least as long as a Retry-After asks, even beyond maxDelayMs', async () => {
    const faulty = new FaultyBackend(new MemoryBackend());
    faulty.addRule({ operation: 'save', times: 1, error: () => new BackupError('RATE_LIMITED', '429', { retryAfterMs: 90_000 }) });
    faulty.addRule({ operation: 'save', times: 1, error: () => new BackupError('RATE_LIMITED', '429', { retryAfterMs: 1 }) });
    const { backend, delays } = harness(faulty, { baseDelayMs: 1000, maxDelayMs: 60_000 });
    await backend.save(h(1), new Uint8Array([1]));
    // The first wait is the Retry-After (longer than the jittered 500); the second is the jitter (longer than 1).
    expect(delays).toEqual([90_000, 1000]);
    expect(await backend.load(h(1))).toEqual(new Uint8Array([1]));
  });

  const permanent: ErrorCode[] = ['NOT_FOUND', 'INVALID_RANGE', 'QUOTA_EXCEEDED', 'UNAUTHORIZED', 'PERMISSION_DENIED', 'IO', 'APPEND_ONLY'];
  for (const code of permanent) {
    it(`does not retry ${code}`, async () => {
      const faulty = new FaultyBackend(new MemoryBackend());
      const error = new BackupError(code, 'temporarily unavailable, please retry (the message must not matter)');
      faulty.addRule({ operation: 'save', error });
      const { backend, delays } = harness(faulty);
      expect(await rejection(backend.save(h(1), new Uint8Array(1)))).toBe(error);
      expect(delays).toEqual([]);
      expect(faulty.calls).toHaveLength(1);
    });
  }

  it('treats anything that is not a BackupError as permanent', async () => {
    let calls = 0;
    const inner = new MemoryBackend();
    inner.stat = async () => {
      calls++;
      throw Object.assign(new Error('ECONNRESET'), { code: 'ECONNRESET' });
    };
    const { backend, delays } = harness(inner);
    expect(await rejection(backend.stat(h(1)))).toMatchObject({ code: 'ECONNRESET' });
    expect(calls).toBe(1);
    expect(delays).toEqual([]);
    // A malformed handle (a caller bug) is not retried either.
    expect(await rejection(backend.save({ type: 'data', name: '../x' }, new Uint8Array(1)))).toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect(delays).toEqual([]);
  });

  it('gives up after maxAttempts with the last error', async () => {
    const faulty = new FaultyBackend(new MemoryBackend());
    let n = 0;
    faulty.addRule({ operation: 'remove', error: () => new BackupError('UNAVAILABLE', `failure ${++n}`) });
    const { backend, delays, events } = harness(faulty, { maxAttempts: 3 });
    const e = await rejection(backend.remove(h(1)));
    expect((e as BackupError).message).toBe('failure 3');
    expect(faulty.calls).toHaveLength(3);
    expect(delays).toHaveLength(2);
    expect(events.map((ev) => ev.error.message)).toEqual(['failure 1', 'failure 2']);
  });

  it('with maxAttempts 1 does not retry at all', async () => {
    const faulty = new FaultyBackend(new MemoryBackend());
    faulty.addRule({ operation: 'stat', error: transient });
    const { backend, delays } = harness(faulty, { maxAttempts: 1 });
    await rejection(backend.stat(h(1)));
    expect(delays).toEqual([]);
    expect(() => new RetryBackend(faulty, { maxAttempts: 0 })).toThrow(BackupError);
  });

  it('retries a save whose outcome was unknown and ends with the file stored once', async () => {
    const memory = new MemoryBackend();
    const faulty = new FaultyBackend(memory);
    faulty.addRule({ operation: 'save', times: 2, applyFirst: true, error: transient });
    const { backend } = harness(faulty);
    await backend.save(h(7), new Uint8Array([1, 2, 3]));
    expect(faulty.calls.map((c) => c.applied ?? false)).toEqual([true, true, false]);
    const listed: FileInfo[] = [];
    for await (const f of memory.list('data')) listed.push(f);
    expect(listed).toEqual([{ name: id(7), size: 3 }]);
  });

  it('restarts a failed listing and skips the names already yielded', async () => {
    const memory = new MemoryBackend();
    for (let i = 0; i < 10; i++) await memory.save(h(i), new Uint8Array(i));
    const faulty = new FaultyBackend(memory);
    faulty.addRule({ operation: 'list', nth: 1, afterItems: 4, error: transient });
    faulty.addRule({ operation: 'list', nth: 2, afterItems: 7, error: transient });
    const { backend, delays, events } = harness(faulty);
    const names: string[] = [];
    for await (const f of backend.list('data')) names.push(f.name);
    expect(names).toEqual(Array.from({ length: 10 }, (_, i) => id(i)));
    expect(faulty.calls.filter((c) => c.operation === 'list')).toHaveLength(3);
    expect(delays).toHaveLength(2);
    expect(events.map((e) => e.operation)).toEqual(['list', 'list']);
  });

  it('gives up on a listing after maxAttempts failures without progress', async () => {
    const memory = new MemoryBackend();
    for (let i = 0; i < 5; i++) await memory.save(h(i), new Uint8Array(1));
    const faulty = new FaultyBackend(memory);
    faulty.addRule({ operation: 'list', afterItems: 2, error: transient });
    const { backend } = harness(faulty, { maxAttempts: 4 });
    const names: string[] = [];
    const e = await rejection(
      (async () => {
        for await (const f of backend.list('data')) names.push(f.name);
      })(),
    );
    expect((e as BackupError).code).toBe('UNAVAILABLE');
    expect(names).toEqual([id(0), id(1)]);
    expect(faulty.calls).toHaveLength(4);
  });

  it('starts counting attempts again when a restarted listing makes progress', async () => {
    const memory = new MemoryBackend();
    for (let i = 0; i < 12; i++) await memory.save(h(i), new Uint8Array(1));
    let listings = 0;
    // Each listing gets two entries further than the previous one before the connection drops.
    const flaky = {
      location: 'flaky',
      save: memory.save.bind(memory),
      load: memory.load.bind(memory),
      stat: memory.stat.bind(memory),
      remove: memory.remove.bind(memory),
      close: memory.close.bind(memory),
      async *list(type: FileType) {
        const limit = 2 * ++listings;
        let n = 0;
        for await (const f of memory.list(type)) {
          if (n++ === limit) throw transient();
          yield f;
        }
      },
    };
    const backend = new RetryBackend(flaky, { maxAttempts: 2, sleep: async () => {} });
    const names: string[] = [];
    for await (const f of backend.list('data')) names.push(f.name);
    expect(names).toEqual(Array.from({ length: 12 }, (_, i) => id(i)));
    expect(listings).toBe(6);
  });

  it('closes the inner listing when the caller stops early', async () => {
    let closed = false;
    const memory = new MemoryBackend();
    for (let i = 0; i < 3; i++) await memory.save(h(i), new Uint8Array(1));
    const inner = Object.assign(Object.create(memory) as MemoryBackend, {
      async *list(type: FileType) {
        try {
          yield* memory.list(type);
        } finally {
          closed = true;
        }
      },
    });
    const backend = new RetryBackend(inner);
    for await (const _ of backend.list('data')) break;
    expect(closed).toBe(true);
  });

  it('offers usage only when the inner backend does, and retries it', async () => {
    const faulty = new FaultyBackend(new MemoryBackend());
    const { backend } = harness(faulty);
    expect(await backend.usage?.()).toEqual({ usedBytes: 0, totalBytes: null, trashBytes: 0 });
    expect(new RetryBackend(faultyMethods(faulty)).usage).toBeUndefined();

    let calls = 0;
    const memory = new MemoryBackend();
    const flaky = Object.assign(Object.create(memory) as MemoryBackend, {
      usage: async () => {
        if (++calls < 3) throw transient();
        return memory.usage();
      },
    });
    expect(await harness(flaky).backend.usage?.()).toMatchObject({ usedBytes: 0 });
    expect(calls).toBe(3);
  });

  it('does not retry close', async () => {
    let calls = 0;
    const memory = new MemoryBackend();
    const inner = Object.assign(Object.create(memory) as MemoryBackend, {
      close: async () => {
        calls++;
        throw transient();
      },
    });
    await rejection(harness(inner).backend.close());
    expect(calls).toBe(1);
  });
});

function faultyMethods(b: FaultyBackend) {
  return {
    location: b.location,
    save: b.save.bind(b),
    load: b.load.bind(b),
    stat: b.stat.bind(b),
    list: b.list.bind(b),
    remove: b.remove.bind(b),
    close: b.close.bind(b),
  };
}
