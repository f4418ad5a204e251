/**
 * `bam config validate [--file F]`: checks config.json against the schema and prints each problem with its exact
 * path and what to write instead.
 */
import fs from 'node:fs';
import { configValidation } from '@backup-manager/config';
import { BackupError } from '@backup-manager/core-archive';
import type { Runtime } from '../runtime.ts';

export async function configValidateCommand(rt: Runtime, flags: { file?: string }): Promise<number> {
  const file = flags.file ?? rt.paths.config;
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' && !flags.file) {
      rt.printJson({ type: 'config-valid', file, exists: false, valid: true });
      rt.print(`${file} does not exist: the defaults apply (valid)`);
      return 0;
    }
    throw new BackupError('CONFIG_INVALID', `cannot read ${file}: ${(e as Error).message}`, { cause: e });
  }
  const { parseConfigText, formatIssues } = await configValidation();
  const result = parseConfigText(text);
  if (result.ok) {
    rt.printJson({ type: 'config-valid', file, exists: true, valid: true, config: result.config });
    rt.print(`${file} is valid`);
    return 0;
  }
  rt.printJson({ type: 'config-invalid', file, valid: false, issues: result.issues });
  if (!rt.json) rt.streams.stderr.write(`${file} is not valid:\n${formatIssues(result.issues)}\n`);
  return 1;
}
