import { describe, expect, it } from 'vitest';
import { BackupError } from '../errors.ts';
import type { Backend, FileInfo, FileType, Handle } from './backend.ts';
import { BandwidthLimitBackend, ConnectionLimitBackend } from './limits.ts';
import { MemoryBackend } from './memory.ts';

const id = (n: number) => n.toString(16).padStart(64, '0');
const h = (n: number): Handle => ({ type: 'data', name: id(n) });
const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

/** A backend whose loads and list pulls wait until the test releases them, counting how many run at once. */
class GatedBackend implements Backend {
  readonly location = 'gated';
  active = 0;
  maxActive = 0;
  readonly started: string[] = [];
  readonly #gates: (() => void)[] = [];

  async #gate(label: string): Promise<void> {
    this.started.push(label);
    this.active++;
    this.maxActive = Math.max(this.maxActive, this.active);
    await new Promise<void>((resolve) => this.#gates.push(resolve));
    this.active--;
  }

  releaseOne(): void {
    this.#gates.shift()?.();
  }

  get waiting(): number {
    return this.#gates.length;
  }

  async save(hd: Handle): Promise<void> {
    await this.#gate(`save ${hd.name.slice(-2)}`);
  }
  async load(hd: Handle): Promise<Uint8Array> {
    await this.#gate(`load ${hd.name.slice(-2)}`);
    return new Uint8Array([1]);
  }
  async stat(hd: Handle): Promise<FileInfo> {
    await this.#gate(`stat ${hd.name.slice(-2)}`);
    return { name: hd.name, size: 1 };
  }
  async remove(hd: Handle): Promise<void> {
    if (hd.name === id(0xee)) throw new BackupError('PERMISSION_DENIED', 'no');
    await this.#gate(`remove ${hd.name.slice(-2)}`);
  }
  async *list(_type: FileType): AsyncIterable<FileInfo> {
    for (let i = 0; i < 3; i++) {
      await this.#gate(`list ${i}`);
      yield { name: id(i), size: 1 };
    }
  }
  async close(): Promise<void> {}
}

describe('ConnectionLimitBackend', () => {
  it('runs at most maxConcurrent operations at once and starts the waiting ones in order', async () => {
    const inner = new GatedBackend();
    const b = new ConnectionLimitBackend(inner, 2);
    const all = Promise.all([b.load(h(1)), b.save(h(2), new Uint8Array(1)), b.stat(h(3)), b.remove(h(4)), b.load(h(5))]);
    await tick();
    expect(inner.active).toBe(2);
    expect(inner.started).toEqual(['load 01', 'save 02']);
    inner.releaseOne();
    await tick();
    expect(inner.started).toEqual(['load 01', 'save 02', 'stat 03']);
    while (inner.waiting > 0) {
      inner.releaseOne();
      await tick();
    }
    await all;
    expect(inner.maxActive).toBe(2);
    expect(inner.started).toEqual(['load 01', 'save 02', 'stat 03', 'remove 04', 'load 05']);
  });

  it('frees the slot of a failed operation', async () => {
    const inner = new GatedBackend();
    const b = new ConnectionLimitBackend(inner, 1);
    await expect(b.remove(h(0xee))).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });
    const p = b.load(h(1));
    await tick();
    expect(inner.active).toBe(1);
    inner.releaseOne();
    await p;
  });

  it('holds a slot per page pull of a listing, not for the whole listing', async () => {
    const inner = new GatedBackend();
    const b = new ConnectionLimitBackend(inner, 1);
    const it = b.list('data')[Symbol.asyncIterator]();
    const first = it.next();
    await tick();
    expect(inner.active).toBe(1);
    // While the pull is in flight, another operation waits for the slot.
    const load = b.load(h(9));
    await tick();
    expect(inner.started).toEqual(['list 0']);
    inner.releaseOne();
    expect((await first).value).toEqual({ name: id(0), size: 1 });
    // Between pulls the listing holds nothing: the load gets the slot.
    await tick();
    expect(inner.started).toEqual(['list 0', 'load 09']);
    inner.releaseOne();
    await load;
    const second = it.next();
    await tick();
    inner.releaseOne();
    expect((await second).value).toEqual({ name: id(1), size: 1 });
    await it.return?.();
  });

  it('lets a caller load files inside a listing loop with a single slot', async () => {
    const memory = new MemoryBackend();
    for (let i = 0; i < 5; i++) await memory.save(h(i), new Uint8Array([i]));
    const b = new ConnectionLimitBackend(memory, 1);
    const seen: number[] = [];
    for await (const f of b.list('data')) seen.push((await b.load({ type: 'data', name: f.name }))[0] as number);
    expect(seen.sort()).toEqual([0, 1, 2, 3, 4]);
  });

  it('rejects a limit below 1 and passes usage through only when the inner backend has it', async () => {
    expect(() => new ConnectionLimitBackend(new MemoryBackend(), 0)).toThrow(BackupError);
    expect(() => new ConnectionLimitBackend(new MemoryBackend(), 1.5)).toThrow(BackupError);
    expect(new ConnectionLimitBackend(new GatedBackend(), 1).usage).toBeUndefined();
    expect(await new ConnectionLimitBackend(new MemoryBackend({ capacityBytes: 9 }), 1).usage?.()).toMatchObject({ totalBytes: 9 });
  });
});

/** A fake monotonic clock whose sleep advances time, and a log of the waits and inner calls. */
function fakeTime() {
  const log: string[] = [];
  let t = 1_000;
  return {
    log,
    now: () => t,
    sleep: async (ms: number) => {
      log.push(`sleep ${ms}`);
      t += ms;
    },
    advance: (ms: number) => {
      t += ms;
    },
  };
}

function loggingMemory(log: string[]): MemoryBackend {
  const memory = new MemoryBackend();
  const save = memory.save.bind(memory);
  const load = memory.load.bind(memory);
  memory.save = async (hd, data) => {
    log.push(`save ${data.byteLength}`);
    await save(hd, data);
  };
  memory.load = async (hd, offset, length) => {
    log.push(`load ${String(offset)} ${String(length)}`);
    return load(hd, offset, length);
  };
  return memory;
}

describe('BandwidthLimitBackend', () => {
  it('lets one second of uploads through at once and spaces the rest at the limit', async () => {
    const time = fakeTime();
    const b = new BandwidthLimitBackend(loggingMemory(time.log), { uploadBytesPerSecond: 1000, now: time.now, sleep: time.sleep });
    for (let i = 0; i < 3; i++) await b.save(h(i), new Uint8Array(1000));
    expect(time.log).toEqual(['save 1000', 'sleep 1000', 'save 1000', 'sleep 1000', 'save 1000']);
    expect(time.now()).toBe(3_000);
  });

  it('makes a file larger than the bucket wait for its bytes first', async () => {
    const time = fakeTime();
    const b = new BandwidthLimitBackend(loggingMemory(time.log), { uploadBytesPerSecond: 1000, now: time.now, sleep: time.sleep });
    await b.save(h(1), new Uint8Array(5000));
    expect(time.log).toEqual(['sleep 4000', 'save 5000']);
  });

  it('refills with time, but never beyond one second of traffic', async () => {
    const time = fakeTime();
    const b = new BandwidthLimitBackend(loggingMemory(time.log), { uploadBytesPerSecond: 1000, now: time.now, sleep: time.sleep });
    await b.save(h(1), new Uint8Array(1000));
    time.advance(500);
    await b.save(h(2), new Uint8Array(500));
    time.advance(60_000);
    await b.save(h(3), new Uint8Array(3000));
    expect(time.log).toEqual(['save 1000', 'save 500', 'sleep 2000', 'save 3000']);
  });

  it('queues concurrent uploads behind each other so that the total rate holds', async () => {
    const time = fakeTime();
    const sleeps: number[] = [];
    const b = new BandwidthLimitBackend(new MemoryBackend(), {
      uploadBytesPerSecond: 1000,
      now: time.now,
      sleep: async (ms) => {
        sleeps.push(ms);
      },
    });
    await Promise.all([b.save(h(1), new Uint8Array(2000)), b.save(h(2), new Uint8Array(2000))]);
    expect(sleeps.sort((x, y) => x - y)).toEqual([1000, 3000]);
  });

  it('charges a ranged download before reading and a whole-file download after', async () => {
    const time = fakeTime();
    const memory = loggingMemory(time.log);
    await memory.save(h(1), new Uint8Array(3000));
    time.log.length = 0;
    const b = new BandwidthLimitBackend(memory, { downloadBytesPerSecond: 1000, now: time.now, sleep: time.sleep });
    await b.load(h(1), 0, 2000);
    await b.load(h(1));
    expect(time.log).toEqual(['sleep 1000', 'load 0 2000', 'load undefined undefined', 'sleep 3000']);
  });

  it('limits only the directions that have a limit and never counts metadata', async () => {
    const time = fakeTime();
    const memory = loggingMemory(time.log);
    const b = new BandwidthLimitBackend(memory, { downloadBytesPerSecond: 10, now: time.now, sleep: time.sleep });
    await b.save(h(1), new Uint8Array(100_000));
    await b.stat(h(1));
    for await (const _ of b.list('data')) {
      /* drain */
    }
    await b.remove(h(1));
    expect(time.log).toEqual(['save 100000']);
  });

  it('rejects a non-positive rate', () => {
    expect(() => new BandwidthLimitBackend(new MemoryBackend(), { uploadBytesPerSecond: 0 })).toThrow(BackupError);
    expect(() => new BandwidthLimitBackend(new MemoryBackend(), { downloadBytesPerSecond: Number.NaN })).toThrow(BackupError);
  });
});
