import { parentPort } from 'node:worker_threads';
import { greet } from './hello.ts';
parentPort?.on('message', (m: string) => parentPort?.postMessage(greet(m)));
