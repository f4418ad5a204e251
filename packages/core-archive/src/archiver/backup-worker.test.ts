import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { chunkLengths, createChunkerParams, DEFAULT_CHUNK_SIZES } from '../chunker/chunker.ts';
import { openBlob } from '../crypto/blob.ts';
import { idToBytes } from '../crypto/hash.ts';
import type { ToMain, ToWorker, WorkerFileResult, WorkerInit } from '../pool-protocol.ts';
import { BATCH_BYTES, BackupPipeline } from './backup-worker.ts';
import type { BackupPort } from './backup-worker.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'backup-worker-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function file(name: string, bytes: Uint8Array): { path: string; bytes: Uint8Array } {
  const p = path.join(dir, name);
  fs.writeFileSync(p, bytes);
  return { path: p, bytes };
}

function text(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = 97 + ((x >>> 16) % 7);
  }
  return out;
}

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/**
 * The main thread's side, as the pool and the archiver play it: claims ids, stores blobs after a random delay (so
 * acknowledgements come back out of order), and records what the worker posted and when.
 */
class FakeMain implements BackupPort {
  readonly init: WorkerInit = {
    key: new Uint8Array(randomBytes(32)),
    chunkerSecret: new Uint8Array(randomBytes(32)),
    chunkSizes: { ...DEFAULT_CHUNK_SIZES },
    compression: { compression: 'zstd', level: 3 },
  };
  readonly claimed = new Set<string>();
  readonly stored = new Map<string, Uint8Array>();
  readonly results: { job: number; result: WorkerFileResult; storedThen: Set<string> }[] = [];
  readonly done: number[] = [];
  failStores = false;
  /** delay in ms of the acknowledgement of a 'blobs' message holding a chunk larger than an arena */
  slowLargeStores = 0;

  post(msg: ToMain): void {
    if (msg.t !== 'results') throw new Error(`unexpected ${msg.t}`);
    for (const r of msg.results) this.results.push({ ...r, storedThen: new Set(this.stored.keys()) });
    for (const job of msg.done) {
      // A job is done only after every one of its results.
      expect(this.done).not.toContain(job);
      this.done.push(job);
    }
  }

  request(msg: Extract<ToMain, { req: number }>): Promise<ToWorker> {
    const large = msg.t === 'blobs' && msg.blobs.some((b) => b.rawLength > BATCH_BYTES);
    return new Promise((resolve) => {
      setTimeout(() => {
        if (msg.t === 'query') {
          resolve({ t: 'known', req: msg.req, isNew: msg.ids.map((id) => !this.claimed.has(id) && (this.claimed.add(id), true)) });
          return;
        }
        if (this.failStores) {
          resolve({ t: 'ack', req: msg.req, data: msg.data, error: { code: 'IO', message: 'disk full' } });
          return;
        }
        for (const b of msg.blobs) {
          expect(this.claimed.has(b.id)).toBe(true);
          const plain = openBlob(this.init.key, 'data', idToBytes(b.id), msg.data.subarray(b.offset, b.offset + b.length), b.rawLength, b.id);
          expect(sha(plain)).toBe(b.id);
          expect(this.stored.has(b.id)).toBe(false);
          this.stored.set(b.id, plain);
        }
        resolve({ t: 'ack', req: msg.req, data: msg.data });
      }, large ? this.slowLargeStores : Math.random() * 4);
    });
  }

  poll(): void {}

  pipeline(): BackupPipeline {
    let req = 1;
    return new BackupPipeline(this, this.init, createChunkerParams(this.init.chunkerSecret, this.init.chunkSizes), () => req++);
  }
}

function jobOf(files: { path: string }[], first: number) {
  return files.map((f, i) => {
    const st = fs.statSync(f.path, { bigint: true });
    return { index: first + i, path: f.path, ino: st.ino.toString(), mtimeNs: st.mtimeNs.toString() };
  });
}

describe('BackupPipeline', () => {
  it('stores every new chunk once, and reports each file only after its chunks are stored, jobs done after their files', async () => {
    const small = Array.from({ length: 300 }, (_, i) => file(`s${i}`, text(100 + i * 37, i)));
    const files = [
      file('empty', new Uint8Array(0)),
      ...small.slice(0, 150),
      // Zeros make chunks of the maximum size: larger than an arena, and all the same blob.
      file('zeros', new Uint8Array(20 * 1024 * 1024)),
      file('random', new Uint8Array(randomBytes(6 * 1024 * 1024))),
      file('again', small[3]!.bytes),
      ...small.slice(150),
    ];
    const main = new FakeMain();
    const p = main.pipeline();
    const jobs = [files.slice(0, 100), files.slice(100, 160), files.slice(160)];
    let first = 0;
    for (const [j, job] of jobs.entries()) {
      await p.addFiles(j + 1, jobOf(job, first));
      first += job.length;
    }
    await p.finish();
    p.close();

    expect(main.done).toEqual([1, 2, 3]);
    expect(p.openJobs).toEqual([]);
    expect(main.results.map((r) => r.result.index).sort((a, b) => a - b)).toEqual(files.map((_, i) => i));
    for (const { result, storedThen } of main.results) {
      if (result.error) throw new Error(result.error.message);
      const f = files[result.index]!;
      expect(result.size).toBe(f.bytes.byteLength);
      expect(result.sha256).toBe(sha(f.bytes));
      expect(result.changed).toBe(false);
      // Every chunk of the file was in the pack saver when its result arrived, and they make up the file.
      for (const id of result.content) expect(storedThen.has(id)).toBe(true);
      expect(Buffer.concat(result.content.map((id) => main.stored.get(id)!)).equals(Buffer.from(f.bytes))).toBe(true);
    }
    expect(main.stored.size).toBe(main.claimed.size);
  });

  it('cuts every file as the chunker cuts it whole, through its small read buffer and after a grown one', async () => {
    const { minSize, maxSize } = DEFAULT_CHUNK_SIZES;
    const mixed = Buffer.concat([randomBytes(3 * 1024 * 1024), new Uint8Array(maxSize + 5), randomBytes(2 * 1024 * 1024 + 3)]);
    const files = [
      file('c-random', new Uint8Array(randomBytes(7 * 1024 * 1024))),
      file('c-text', text(5 * 1024 * 1024, 7)),
      file('c-mixed', new Uint8Array(mixed)),
      // a small file and a just-too-small one right after a file that needed the grown buffer
      file('c-small', text(minSize, 3)),
      file('c-max', new Uint8Array(maxSize)),
      file('c-over', text(minSize + 1, 4)),
      file('c-zeros', new Uint8Array(2 * maxSize)),
    ];
    const main = new FakeMain();
    const p = main.pipeline();
    const params = createChunkerParams(main.init.chunkerSecret, main.init.chunkSizes);
    await p.addFiles(1, jobOf(files, 0));
    await p.finish();
    p.close();
    expect(main.results).toHaveLength(files.length);
    for (const { result } of main.results) {
      if (result.error) throw new Error(result.error.message);
      const bytes = files[result.index]!.bytes;
      const ids: string[] = [];
      let at = 0;
      for (const n of chunkLengths(params, bytes)) ids.push(sha(bytes.subarray(at, (at += n))));
      expect(result.content).toEqual(ids);
      expect(result.sha256).toBe(sha(bytes));
    }
    const max = main.results.find((r) => r.result.index === 4)!.result;
    expect('content' in max && max.content).toHaveLength(1);
  });

  it('holds back the results of a file with a chunk larger than an arena, and of the files after it, until that chunk is stored', async () => {
    const { maxSize } = DEFAULT_CHUNK_SIZES;
    // zeros cut at maxSize (one blob, asked about twice: stored once), then random data whose chunks mostly fit an arena
    const big = new Uint8Array(Buffer.concat([new Uint8Array(2 * maxSize), randomBytes(5 * 1024 * 1024)]));
    const files = [file('l-before', text(3000, 1)), file('l-big', big), file('l-copy', big.slice()), ...Array.from({ length: 5 }, (_, i) => file(`l-after${i}`, text(4000 + i, 20 + i)))];
    const main = new FakeMain();
    main.slowLargeStores = 500;
    const p = main.pipeline();
    await p.addFiles(1, jobOf(files, 0));
    await p.finish();
    p.close();
    expect(main.done).toEqual([1]);
    expect(main.results).toHaveLength(files.length);
    const zeros = sha(new Uint8Array(maxSize));
    for (const { result, storedThen } of main.results) {
      if (result.error) throw new Error(result.error.message);
      if (result.index >= 1) expect(storedThen.has(zeros)).toBe(true);
      for (const id of result.content) expect(storedThen.has(id)).toBe(true);
      expect(Buffer.concat(result.content.map((id) => main.stored.get(id)!)).equals(Buffer.from(files[result.index]!.bytes))).toBe(true);
    }
    expect(main.stored.get(zeros)?.byteLength).toBe(maxSize);
  });

  it('fails the pipeline when a chunk larger than an arena cannot be stored', async () => {
    const main = new FakeMain();
    main.failStores = true;
    const p = main.pipeline();
    let error: unknown;
    try {
      await p.addFiles(3, jobOf([file('x-zeros', new Uint8Array(3 * DEFAULT_CHUNK_SIZES.maxSize)), file('x-small', text(100, 5))], 0));
      await p.finish();
    } catch (e) {
      error = e;
    }
    expect((error as { code?: string }).code).toBe('IO');
    expect(main.done).toEqual([]);
    expect(main.results).toEqual([]);
    p.close();
  });

  it('fails the whole pipeline when the main thread cannot store blobs, naming the open jobs', async () => {
    const main = new FakeMain();
    main.failStores = true;
    const p = main.pipeline();
    const files = Array.from({ length: 40 }, (_, i) => file(`f${i}`, text(50_000, 1000 + i)));
    let error: unknown;
    try {
      await p.addFiles(7, jobOf(files.slice(0, 20), 0));
      await p.addFiles(8, jobOf(files.slice(20), 20));
      await p.finish();
    } catch (e) {
      error = e;
    }
    expect((error as { code?: string }).code).toBe('IO');
    expect((error as Error).message).toContain('disk full');
    expect(p.openJobs.length).toBeGreaterThan(0);
    expect(main.done).toEqual([]);
    p.close();
  });

  it('reports unreadable and vanished files as results, and goes on', async () => {
    const main = new FakeMain();
    const p = main.pipeline();
    const ok = file('ok', text(5000, 9));
    const gone = path.join(dir, 'does-not-exist');
    await p.addFiles(1, [...jobOf([ok], 0), { index: 1, path: gone, ino: '0', mtimeNs: '0' }, { index: 2, path: dir, ino: '0', mtimeNs: '0' }]);
    await p.finish();
    p.close();
    const byIndex = new Map(main.results.map((r) => [r.result.index, r.result]));
    expect(byIndex.get(0)!.error).toBeUndefined();
    expect(byIndex.get(1)!.error?.code).toBe('ENOENT');
    expect(byIndex.get(2)!.error?.code).toBeDefined();
    expect(main.done).toEqual([1]);
  });
});
