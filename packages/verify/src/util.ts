/**
 * Small helpers shared by the checks: bounded parallel map, an event channel that turns callbacks into an async
 * iterator, and the abort check.
 */
import { BackupError } from '@backup-manager/core-archive';

/** Runs `fn` over `items` with at most `limit` in flight, keeping order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const run = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, run));
  return out;
}

export function throwIfAborted(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) throw new BackupError('INTERRUPTED', `${what} interrupted: nothing was changed; run it again to finish`);
}

/**
 * Runs `producer`, which reports events through `emit`, and yields those events as they come. The producer's
 * result is the iterator's return value; its error is thrown from the iteration.
 */
export async function* eventStream<E, R>(producer: (emit: (e: E) => void) => Promise<R>): AsyncGenerator<E, R> {
  const queue: E[] = [];
  let wake: (() => void) | undefined;
  let finished = false;
  let failure: { error: unknown } | undefined;
  let result!: R;
  const emit = (e: E): void => {
    queue.push(e);
    wake?.();
  };
  const run = producer(emit).then(
    (r) => {
      result = r;
      finished = true;
      wake?.();
    },
    (e: unknown) => {
      failure = { error: e };
      finished = true;
      wake?.();
    },
  );
  for (;;) {
    while (queue.length > 0) yield queue.shift()!;
    if (finished) break;
    await new Promise<void>((r) => {
      wake = r;
    });
    wake = undefined;
  }
  await run;
  while (queue.length > 0) yield queue.shift()!;
  if (failure) throw failure.error;
  return result;
}

/** Snapshot paths: `/a` + `b` → `/a/b`, `/` + `b` → `/b`. */
export function joinSnapshotPath(dir: string, name: string): string {
  return dir === '/' ? `/${name}` : `${dir}/${name}`;
}

export function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
