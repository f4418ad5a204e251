import { describe, expect, it } from 'vitest';
import { defaultConfig } from './defaults.ts';
import { parseConfig } from './parse.ts';

describe('defaultConfig', () => {
  it('is exactly what the schema makes of an empty config', () => {
    const parsed = parseConfig({});
    expect(parsed.ok).toBe(true);
    expect(defaultConfig()).toStrictEqual(parsed.ok ? parsed.config : undefined);
  });

  it('is a new object on every call', () => {
    const a = defaultConfig();
    a.destinations.local.enabled = false;
    a.sources.push({} as never);
    expect(defaultConfig().destinations.local.enabled).toBe(true);
    expect(defaultConfig().sources).toEqual([]);
  });
});
