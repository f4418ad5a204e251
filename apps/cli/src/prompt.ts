/**
 * Asks for a secret on the terminal without echoing it.
 */
import readline from 'node:readline';
import type { Runtime } from './runtime.ts';

export async function promptHidden(rt: Runtime, question: string): Promise<string> {
  const input = rt.streams.stdin as NodeJS.ReadStream;
  const output = rt.streams.stderr;
  output.write(question);
  const rl = readline.createInterface({ input, terminal: true, output: undefined as unknown as NodeJS.WritableStream });
  try {
    return await new Promise<string>((resolve) => rl.question('', resolve));
  } finally {
    rl.close();
    output.write('\n');
  }
}
