import { Worker } from 'node:worker_threads';
export { greet } from './hello.ts';
export function workerUrl(): URL {
  return new URL(import.meta.url.endsWith('.ts') ? './worker.ts' : './worker.js', import.meta.url);
}
export async function ask(m: string): Promise<string> {
  const w = new Worker(workerUrl());
  const r = await new Promise<string>((res) => { w.once('message', res); w.postMessage(m); });
  await w.terminate();
  return r;
}
