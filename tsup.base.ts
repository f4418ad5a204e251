// The one tsup set-up every workspace package builds with: ESM for Node 22+, with declarations and source maps.
// A package names its entries (and which of them get declarations); everything else is shared.
import type { Options } from 'tsup';

export function packageBuild(entry: Record<string, string>, options: { declarations?: Record<string, string>; external?: string[] } = {}): Options {
  const extra = Object.keys(entry).length > 1;
  return {
    entry,
    format: ['esm'],
    target: 'node22',
    platform: 'node',
    dts: options.declarations ? { entry: options.declarations } : true,
    sourcemap: true,
    clean: true,
    // Worker entries share code with the main entry: split it into chunks next to them.
    splitting: extra,
    ...(options.external ? { external: options.external } : {}),
  };
}
