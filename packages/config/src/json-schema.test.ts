// The shipped JSON Schema must equal the generated one, and the README must document every key it has.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { configJsonSchema, configJsonSchemaText, SCHEMA_FILE, SCHEMA_REGENERATE_COMMAND } from './json-schema.ts';

interface JsonSchemaNode {
  type?: string | string[];
  properties?: Record<string, JsonSchemaNode>;
  items?: JsonSchemaNode;
  required?: string[];
  default?: unknown;
}

/** Every key path in the schema, as the README writes them: `sources[].path`, `retention.daily`. */
function keyPaths(node: JsonSchemaNode, prefix = ''): string[] {
  const paths: string[] = [];
  for (const [key, child] of Object.entries(node.properties ?? {})) {
    const path = prefix === '' ? key : `${prefix}.${key}`;
    paths.push(path);
    if (child.items?.properties !== undefined) paths.push(...keyPaths(child.items, `${path}[]`));
    else if (child.properties !== undefined) paths.push(...keyPaths(child, path).filter((p) => p !== path));
  }
  return paths;
}

describe('config.schema.json', () => {
  it('is up to date', () => {
    const committed = readFileSync(new URL(`../${SCHEMA_FILE}`, import.meta.url), 'utf8');
    expect(committed, `packages/config/${SCHEMA_FILE} is out of date; run: ${SCHEMA_REGENERATE_COMMAND}`).toBe(
      configJsonSchemaText(),
    );
  });

  it('describes input: strict objects, only sources[].path required, defaults present', () => {
    const schema = configJsonSchema() as JsonSchemaNode & { additionalProperties?: boolean };
    expect(schema.additionalProperties).toBe(false);
    expect(schema.required).toBeUndefined();
    const source = schema.properties?.['sources']?.items;
    expect(source?.required).toEqual(['path']);
    expect(source?.properties?.['schedule']?.default).toBe('0 2 * * *');
  });

  it('has every key documented in the README table', () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    const documented = new Set([...readme.matchAll(/^\| `([^`]+)` \|/gm)].map((match) => match[1]));
    const missing = keyPaths(configJsonSchema() as JsonSchemaNode).filter(
      (path) => !documented.has(path) && !['destinations', 'retention', 'alerts', 'verify', 'repository', 'process'].includes(path) && !/^destinations\.[a-z_]+$/.test(path),
    );
    expect(missing, 'add these keys to the table in packages/config/README.md').toEqual([]);
  });
});
