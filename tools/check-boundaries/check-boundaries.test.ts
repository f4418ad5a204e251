// Tests of the boundary check: small fake workspaces in temp folders, one broken rule at a time, then the real one.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { checkBoundaries, formatViolation, scanImports } from './check-boundaries.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const script = path.join(here, 'check-boundaries.mjs');
const realRoot = path.resolve(here, '..', '..');

type Files = Record<string, string | object | null>;

const core = { '@backup-manager/core-archive': '^0.1.0' };

function manifest(dir: string, scope: string | undefined, extra: object = {}): object {
  return { name: `@backup-manager/${dir}`, version: '0.1.0', type: 'module', ...(scope ? { nx: { tags: [scope] } } : {}), ...extra };
}

/** A workspace that follows every rule, with a few traps (imports in comments, strings, dist/, scripts/). */
const CLEAN: Files = {
  'package.json': {
    name: 'fake-root', private: true, type: 'module', workspaces: ['packages/*', 'apps/*', 'tools/*'],
    devDependencies: { vitest: '^5.0.0', 'fast-check': '^4.0.0' },
  },
  'packages/core-archive/package.json': manifest('core-archive', 'scope:core', {
    exports: { '.': './src/index.ts', './testing': './src/testing/index.ts', './internal/*': null },
    peerDependencies: { vitest: '>=3' },
  }),
  'packages/core-archive/src/index.ts': "import { x } from './x.ts';\nexport { x };\nexport type { Y } from './x.ts';\n",
  'packages/core-archive/src/x.ts': [
    "import fs from 'node:fs';",
    "import path from 'path';",
    '// import { a } from \'@backup-manager/cli\';',
    'const s = "import x from \'lodash\'";',
    "const t = `export * from '${'@backup-manager/cli'}'`;",
    "/* import('../../../apps/cli/src/cli.ts') */",
    "const r = /import '(x)'/;",
    'const meta = import.meta.url;',
    'export const x = [fs, path, s, t, r, meta];',
    'export type Y = string;',
  ].join('\n'),
  'packages/core-archive/src/testing/index.ts': "import { describe } from 'vitest';\nexport { x } from '../x.ts';\nexport { describe };\n",
  'packages/core-archive/src/x.test.ts': "import { it } from 'vitest';\nimport fc from 'fast-check';\nimport { x } from '@backup-manager/core-archive';\n",
  'packages/core-archive/dist/index.js': "import '@backup-manager/cli';\n",
  'packages/core-archive/src/node_modules/dep/index.js': "import '@backup-manager/cli';\n",
  'packages/config/package.json': manifest('config', 'scope:lib', {
    exports: { '.': './src/index.ts' },
    dependencies: { zod: '^4.0.0', ...core },
    devDependencies: { 'left-pad': '^1.0.0' },
  }),
  'packages/config/src/index.ts': "import { z } from 'zod';\nimport { x } from '@backup-manager/core-archive';\nexport const c = [z, x];\n",
  'packages/config/src/index.test.ts': "import { it } from 'vitest';\nimport fc from 'fast-check';\nimport pad from 'left-pad';\nimport { c } from './index.ts';\n",
  'packages/config/scripts/generate.ts': "import '@backup-manager/cli';\nimport '../../../apps/cli/src/cli.ts';\n",
  'packages/config/vitest.config.ts': "import { defineProject } from 'vitest/config';\n",
  'packages/retention-gfs/package.json': manifest('retention-gfs', 'scope:lib', { exports: { '.': './src/index.ts' } }),
  'packages/retention-gfs/src/index.ts': "export const keep = 1;\n",
  'packages/verify/package.json': manifest('verify', 'scope:lib', {
    exports: { '.': './src/index.ts' },
    dependencies: { ...core, '@backup-manager/config': '^0.1.0' },
  }),
  'packages/verify/src/index.ts': "export { c } from '@backup-manager/config';\nexport * from '@backup-manager/core-archive';\n",
  'packages/providers-gdrive/package.json': manifest('providers-gdrive', 'scope:provider', {
    exports: { '.': './src/index.ts' },
    dependencies: { '@googleapis/drive': '^26.0.0' },
    peerDependencies: core,
    devDependencies: { ...core, '@backup-manager/cloud-fakes': '^0.1.0' },
  }),
  'packages/providers-gdrive/src/index.ts': "import { drive } from '@googleapis/drive';\nimport type { Backend } from '@backup-manager/core-archive';\nimport { BackupError } from '@backup-manager/core-archive';\n",
  'packages/providers-gdrive/src/gdrive.test.ts':
    "import { describeBackendConformance } from '@backup-manager/core-archive/testing';\nimport { startGdriveFake } from '@backup-manager/cloud-fakes';\nimport fc from 'fast-check';\n",
  'packages/workflows/package.json': manifest('workflows', 'scope:workflows', {
    exports: { '.': './src/index.ts' },
    dependencies: { ...core, '@backup-manager/verify': '^0.1.0', '@backup-manager/retention-gfs': '^0.1.0' },
  }),
  'packages/workflows/src/index.ts':
    "import { c } from '@backup-manager/verify';\nimport { keep } from '@backup-manager/retention-gfs';\nconst core = await import('@backup-manager/core-archive');\n",
  'apps/cli/package.json': manifest('cli', 'scope:app', {
    dependencies: { ...core, '@backup-manager/workflows': '^0.1.0', '@backup-manager/providers-gdrive': '^0.1.0', commander: '^15.0.0' },
    devDependencies: { '@backup-manager/cloud-fakes': '^0.1.0' },
  }),
  'apps/cli/src/cli.ts':
    "import { Command } from 'commander';\nimport { run } from '@backup-manager/workflows';\nimport { GdriveBackend } from '@backup-manager/providers-gdrive';\nimport { x } from '@backup-manager/core-archive';\n",
  'apps/cli/bin/bam.mjs': "#!/usr/bin/env node\nimport { spawn } from 'node:child_process';\nawait import('../dist/main.js');\n",
  'apps/cli/test/helpers.ts': "import { startGdriveFake } from '@backup-manager/cloud-fakes';\nimport { it } from 'vitest';\n",
  'tools/cloud-fakes/package.json': manifest('cloud-fakes', 'scope:tool', {
    private: true,
    exports: { '.': './src/index.ts' },
    dependencies: { '@googleapis/drive': '^26.0.0', ...core },
  }),
  'tools/cloud-fakes/src/index.ts': "import { drive } from '@googleapis/drive';\nimport { x } from '@backup-manager/core-archive';\n",
};

const made: string[] = [];
afterAll(() => {
  for (const dir of made) fs.rmSync(dir, { recursive: true, force: true });
});

/** Writes CLEAN with `changes` applied (null removes a file) into a new temp folder and returns it. */
function workspace(changes: Files = {}): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'check-boundaries-'));
  made.push(root);
  for (const [rel, content] of Object.entries({ ...CLEAN, ...changes })) {
    if (content === null) continue;
    const file = path.join(root, rel);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content, null, 2) + '\n');
  }
  return root;
}

/** The one violation a workspace with `changes` has (fails when there are none or several). */
function only(changes: Files): { rule: string; file: string; line: number; message: string } {
  const violations = checkBoundaries(workspace(changes));
  expect(violations.map(formatViolation)).toHaveLength(1);
  return violations[0]!;
}

function pkgJson(rel: string): object {
  return CLEAN[rel] as object;
}

describe('scanImports', () => {
  it('finds static, side-effect, type-only, re-export and dynamic specifiers with their lines', () => {
    const source = [
      "import a from 'a';", // 1
      "import { b,", // 2
      "  c as d } from 'b';",
      "import type { T } from 't';", // 4
      "import * as ns from \"ns\";", // 5
      "import 'side-effect';", // 6
      "export * from 'star';", // 7
      "export * as all from 'star-as';", // 8
      "export { e } from 'named';", // 9
      "export type { U } from 'types';", // 10
      "const m = await import('dyn');", // 11
      'const n = await import(`tpl`);', // 12
      "type L = typeof import('in-type');", // 13
      "import json from './x.json' with { type: 'json' };", // 14
      "import from from 'from-named';", // 15
    ].join('\n');
    expect(scanImports(source)).toEqual([
      { specifier: 'a', line: 1, kind: 'import' },
      { specifier: 'b', line: 2, kind: 'import' },
      { specifier: 't', line: 4, kind: 'import' },
      { specifier: 'ns', line: 5, kind: 'import' },
      { specifier: 'side-effect', line: 6, kind: 'import' },
      { specifier: 'star', line: 7, kind: 'export' },
      { specifier: 'star-as', line: 8, kind: 'export' },
      { specifier: 'named', line: 9, kind: 'export' },
      { specifier: 'types', line: 10, kind: 'export' },
      { specifier: 'dyn', line: 11, kind: 'dynamic' },
      { specifier: 'tpl', line: 12, kind: 'dynamic' },
      { specifier: 'in-type', line: 13, kind: 'dynamic' },
      { specifier: './x.json', line: 14, kind: 'import' },
      { specifier: 'from-named', line: 15, kind: 'import' },
    ]);
  });

  it('ignores imports in comments, strings, templates and regexes, and non-literal dynamic imports', () => {
    const source = [
      "// import a from 'comment';",
      "/* export * from 'block'; */",
      "const s = \"import b from 'string'\";",
      "const t = `import c from 'template' ${import('inside-substitution-is-code')}`;",
      "const r = /import d from 'regex'/g;",
      'const q = a / b; const u = "not/regex";',
      'const v = await import(name);',
      'const w = await import(`x/${name}`);',
      'export const x = 1;',
      'export default x;',
      'const meta = import.meta.dirname;',
      'obj.import("not-a-module");',
      "export { x };\nconst y = 'after-export';",
    ].join('\n');
    expect(scanImports(source).map((r) => r.specifier)).toEqual(['inside-substitution-is-code']);
  });
});

describe('checkBoundaries on fake workspaces', () => {
  it('passes a workspace that follows every rule (comments, strings, dist/, node_modules and scripts/ are not read)', () => {
    expect(checkBoundaries(workspace()).map(formatViolation)).toEqual([]);
  });

  describe('scope tags', () => {
    it('requires a scope tag', () => {
      const v = only({ 'packages/retention-gfs/package.json': manifest('retention-gfs', undefined) });
      expect(v).toMatchObject({ rule: 'scope-tag', file: 'packages/retention-gfs/package.json', line: 2 });
      expect(v.message).toBe('@backup-manager/retention-gfs has no nx scope tag — add "nx": { "tags": ["scope:lib"] } to its package.json');
    });

    it('requires the tag its folder calls for', () => {
      const v = only({ 'apps/cli/package.json': { ...pkgJson('apps/cli/package.json'), nx: { tags: ['scope:lib'] } } });
      expect(v.rule).toBe('scope-tag');
      expect(v.message).toBe('@backup-manager/cli is in apps/ but tagged scope:lib — tag it "scope:app" (or move the package to the folder its scope belongs in)');
    });

    it('rejects unknown scope tags', () => {
      const v = only({ 'packages/config/package.json': { ...pkgJson('packages/config/package.json'), nx: { tags: ['scope:misc', 'type:util'] } } });
      expect(v.message).toMatch(/^@backup-manager\/config has the unknown tag scope:misc — use one of scope:core, .* \("scope:lib" for packages\/config\)$/);
    });
  });

  describe('direction', () => {
    it('core-archive imports no workspace package', () => {
      const v = only({
        'packages/core-archive/package.json': { ...pkgJson('packages/core-archive/package.json'), dependencies: { '@backup-manager/retention-gfs': '^0.1.0' } },
        'packages/core-archive/src/x.ts': "export const a = 1;\nimport { keep } from '@backup-manager/retention-gfs';\n",
      });
      expect(v).toMatchObject({ rule: 'direction', file: 'packages/core-archive/src/x.ts', line: 2 });
      expect(v.message).toBe(
        '@backup-manager/core-archive (scope:core) imports @backup-manager/retention-gfs (scope:lib) — core-archive imports no workspace package: define the interface it needs in core-archive and let the caller pass an implementation',
      );
    });

    it('a provider imports only core-archive', () => {
      const v = only({
        'packages/providers-gdrive/package.json': { ...pkgJson('packages/providers-gdrive/package.json'), dependencies: { '@googleapis/drive': '^26.0.0', '@backup-manager/config': '^0.1.0' } },
        'packages/providers-gdrive/src/index.ts': "import { drive } from '@googleapis/drive';\nimport { c } from '@backup-manager/config';\n",
      });
      expect(v).toMatchObject({ rule: 'direction', file: 'packages/providers-gdrive/src/index.ts', line: 2 });
      expect(v.message).toContain('(scope:provider) imports @backup-manager/config (scope:lib) — a provider imports only @backup-manager/core-archive and its own SDK');
    });

    it('a library imports no provider and no workflows', () => {
      const v = only({
        'packages/verify/package.json': { ...pkgJson('packages/verify/package.json'), dependencies: { ...core, '@backup-manager/config': '^0.1.0', '@backup-manager/providers-gdrive': '^0.1.0' } },
        'packages/verify/src/drive.ts': "import { GdriveBackend } from '@backup-manager/providers-gdrive';\n",
      });
      expect(v).toMatchObject({ rule: 'direction', file: 'packages/verify/src/drive.ts', line: 1 });
      expect(v.message).toContain('— a library imports only core-archive and other libraries');
    });

    it('workflows imports no provider', () => {
      const v = only({
        'packages/workflows/package.json': { ...pkgJson('packages/workflows/package.json'), dependencies: { ...core, '@backup-manager/verify': '^0.1.0', '@backup-manager/retention-gfs': '^0.1.0', '@backup-manager/providers-gdrive': '^0.1.0' } },
        'packages/workflows/src/compose.ts': "export { GdriveBackend } from '@backup-manager/providers-gdrive';\n",
      });
      expect(v).toMatchObject({ rule: 'direction', file: 'packages/workflows/src/compose.ts', line: 1 });
      expect(v.message).toContain('providers are composed in the apps');
    });

    // (In new packages that nothing depends on: anything the app depends on importing it is also a cycle.)
    it('nothing imports an app, not even a tool or a test', () => {
      const v = only({
        'packages/notes/package.json': manifest('notes', 'scope:lib', { devDependencies: { '@backup-manager/cli': '^0.1.0' } }),
        'packages/notes/src/cli.test.ts': "import { it } from 'vitest';\nimport { runCli } from '@backup-manager/cli';\n",
      });
      expect(v).toMatchObject({ rule: 'direction', file: 'packages/notes/src/cli.test.ts', line: 2 });
      expect(v.message).toBe(
        '@backup-manager/notes (scope:lib) imports the app @backup-manager/cli (scope:app) — nothing imports an app: move what both need into a library in packages/ and import that',
      );
      const fromTool = only({
        'tools/bench/package.json': manifest('bench', 'scope:tool', { dependencies: { '@backup-manager/cli': '^0.1.0' } }),
        'tools/bench/bin/bench.mjs': "const cli = await import('@backup-manager/cli');\n",
      });
      expect(fromTool).toMatchObject({ rule: 'direction', file: 'tools/bench/bin/bench.mjs', line: 1 });
    });

    it('only test files (and tools) import a tool', () => {
      const v = only({ 'apps/cli/bin/bam.mjs': "#!/usr/bin/env node\nawait import('@backup-manager/cloud-fakes');\n" });
      expect(v).toMatchObject({ rule: 'direction', file: 'apps/cli/bin/bam.mjs', line: 2 });
      expect(v.message).toBe(
        '@backup-manager/cli (scope:app) imports the tool @backup-manager/cloud-fakes (scope:tool) outside a test — tools are not published: only test files (*.test.ts, test/**) may import them; move this code into a test file or the package\'s test/ folder, or what it needs from the tool into a package',
      );
    });
  });

  describe('relative and deep imports', () => {
    it('a relative import may not leave its package', () => {
      const v = only({ 'apps/cli/src/cli.ts': "import { Command } from 'commander';\nimport { x } from '../../../packages/core-archive/src/x.ts';\n" });
      expect(v).toMatchObject({ rule: 'relative-escape', file: 'apps/cli/src/cli.ts', line: 2 });
      expect(v.message).toBe(
        "relative import '../../../packages/core-archive/src/x.ts' leaves @backup-manager/cli for @backup-manager/core-archive's files — import '@backup-manager/core-archive' by its package name (declared in package.json); export what you need from its src/index.ts",
      );
      const outside = only({ 'packages/config/src/paths.ts': "import { s } from '../../../scripts/shared.ts';\n" });
      expect(outside.message).toBe(
        "relative import '../../../scripts/shared.ts' leaves @backup-manager/config (scripts/shared.ts) — keep the file inside the package, or put it in a workspace package and import it by name",
      );
    });

    it('no import into another package\'s src/ or dist/', () => {
      const v = only({ 'packages/config/src/errors.ts': "\n\nimport { BackupError } from '@backup-manager/core-archive/src/errors.ts';\n" });
      expect(v).toMatchObject({ rule: 'deep-import', file: 'packages/config/src/errors.ts', line: 3 });
      expect(v.message).toBe(
        "deep import into @backup-manager/core-archive's internals ('@backup-manager/core-archive/src/errors.ts') — import from '@backup-manager/core-archive' or '@backup-manager/core-archive/testing'; export what you need from its entry (src/index.ts)",
      );
      expect(only({ 'packages/config/src/errors.ts': "import '@backup-manager/core-archive/dist/index.js';\n" }).rule).toBe('deep-import');
    });

    it('only declared exports subpaths, and a null target blocks', () => {
      const v = only({ 'packages/verify/src/x.ts': "export * from '@backup-manager/config/schema';\n" });
      expect(v.message).toBe(
        "'@backup-manager/config/schema' is not one of @backup-manager/config's exports — import from '@backup-manager/config'; export what you need from its entry (src/index.ts)",
      );
      expect(only({ 'packages/verify/src/x.ts': "import '@backup-manager/core-archive/internal/pack';\n" }).rule).toBe('deep-import');
    });

    it('no absolute imports', () => {
      const v = only({ 'packages/config/src/abs.ts': "import '/etc/x.ts';\n" });
      expect(v).toMatchObject({ rule: 'absolute-import', line: 1 });
    });
  });

  describe('declared dependencies', () => {
    it('a third-party import is declared in dependencies', () => {
      const v = only({ 'packages/config/src/cron.ts': "import { CronExpressionParser } from 'cron-parser/dist/index.js';\n" });
      expect(v).toMatchObject({ rule: 'undeclared', file: 'packages/config/src/cron.ts', line: 1 });
      expect(v.message).toBe(
        "@backup-manager/config imports 'cron-parser/dist/index.js' but does not declare cron-parser — add \"cron-parser\": its version range to its dependencies in packages/config/package.json",
      );
    });

    it('a workspace import is declared, with its version', () => {
      const v = only({ 'packages/verify/src/r.ts': "import { keep } from '@backup-manager/retention-gfs';\n" });
      expect(v.message).toBe(
        "@backup-manager/verify imports '@backup-manager/retention-gfs' but does not declare @backup-manager/retention-gfs — add \"@backup-manager/retention-gfs\": \"^0.1.0\" to its dependencies in packages/verify/package.json",
      );
    });

    it('non-test code may not import a devDependency', () => {
      const v = only({ 'packages/config/src/pad.ts': "import pad from 'left-pad';\n" });
      expect(v.message).toBe(
        "left-pad is only a devDependency of @backup-manager/config, but non-test code imports 'left-pad' — move it to dependencies, or to peerDependencies marked optional in peerDependenciesMeta when it is loaded only if present",
      );
    });

    it('test files may use devDependencies and the root devDependencies, nothing else', () => {
      const v = only({ 'packages/retention-gfs/test/golden.test.ts': "import { it } from 'vitest';\nimport fc from 'fast-check';\nimport request from 'supertest';\n" });
      expect(v).toMatchObject({ rule: 'undeclared', file: 'packages/retention-gfs/test/golden.test.ts', line: 3 });
      expect(v.message).toBe(
        "'supertest' is imported by a test but @backup-manager/retention-gfs does not declare supertest — add \"supertest\": its version range to its devDependencies (or to the root package.json's devDependencies when every package's tests use it)",
      );
    });

    it('root devDependencies do not count for non-test code', () => {
      expect(only({ 'packages/config/src/arb.ts': "import fc from 'fast-check';\n" }).rule).toBe('undeclared');
    });

    it('names no workspace package that does not exist', () => {
      const v = only({ 'apps/cli/src/x.ts': "import { plan } from '@backup-manager/dr-plan';\n" });
      expect(v).toMatchObject({ rule: 'unknown-package', line: 1 });
      expect(v.message).toMatch(/^there is no workspace package named @backup-manager\/dr-plan/);
    });
  });

  describe('providers', () => {
    it('take core-archive as a peer dependency', () => {
      const v = only({
        'packages/providers-gdrive/package.json': {
          ...pkgJson('packages/providers-gdrive/package.json'),
          dependencies: { '@googleapis/drive': '^26.0.0', ...core },
          peerDependencies: {},
        },
      });
      expect(v).toMatchObject({ rule: 'peer-dependency', file: 'packages/providers-gdrive/package.json', line: 15 });
      expect(v.message).toContain('lists @backup-manager/core-archive in dependencies — move it to peerDependencies');
    });

    it('an undeclared core-archive is asked for as a peer dependency', () => {
      const v = only({
        'packages/providers-gdrive/package.json': { ...pkgJson('packages/providers-gdrive/package.json'), peerDependencies: {}, devDependencies: { '@backup-manager/cloud-fakes': '^0.1.0' } },
        'packages/providers-gdrive/src/index.ts': "import { drive } from '@googleapis/drive';\nimport { BackupError } from '@backup-manager/core-archive';\n",
        'packages/providers-gdrive/src/gdrive.test.ts': null,
      });
      expect(v).toMatchObject({ rule: 'undeclared', file: 'packages/providers-gdrive/src/index.ts', line: 2 });
      expect(v.message).toContain('add "@backup-manager/core-archive": "^0.1.0" to its peerDependencies');
    });

    it('import only their own SDK', () => {
      const v = only({
        'packages/providers-gdrive/package.json': { ...pkgJson('packages/providers-gdrive/package.json'), dependencies: { '@googleapis/drive': '^26.0.0', dropbox: '^10.0.0' } },
        'packages/providers-gdrive/src/other.ts': "import { Dropbox } from 'dropbox';\n",
      });
      expect(v).toMatchObject({ rule: 'provider-sdk', file: 'packages/providers-gdrive/src/other.ts', line: 1 });
      expect(v.message).toContain("imports 'dropbox', which is not its SDK (googleapis, @googleapis/*, google-auth-library)");
    });
  });

  it('core-archive and the libraries import no cloud SDK', () => {
    const v = only({
      'packages/core-archive/package.json': { ...pkgJson('packages/core-archive/package.json'), dependencies: { dropbox: '^10.0.0' } },
      'packages/core-archive/src/d.ts': "import { Dropbox } from 'dropbox';\n",
    });
    expect(v).toMatchObject({ rule: 'cloud-sdk', file: 'packages/core-archive/src/d.ts', line: 1 });
    expect(v.message).toContain("imports the cloud SDK 'dropbox' — cloud SDKs belong in a providers-* package");
  });

  it('finds cycles between workspace packages, through imports or declared dependencies', () => {
    const v = only({
      'packages/retention-gfs/package.json': { ...pkgJson('packages/retention-gfs/package.json'), dependencies: { '@backup-manager/verify': '^0.1.0' } },
      'packages/retention-gfs/src/index.ts': "import { c } from '@backup-manager/verify';\nexport const keep = 1;\n",
      'packages/verify/package.json': { ...pkgJson('packages/verify/package.json'), dependencies: { ...core, '@backup-manager/config': '^0.1.0', '@backup-manager/retention-gfs': '^0.1.0' } },
    });
    expect(v).toMatchObject({ rule: 'cycle', file: 'packages/retention-gfs/src/index.ts', line: 1 });
    expect(v.message).toBe(
      'import cycle between workspace packages: @backup-manager/retention-gfs → @backup-manager/verify → @backup-manager/retention-gfs — break it: move what they share into a package below them, or invert one edge with an interface',
    );
  });
});

describe('the command', () => {
  const run = (root: string) => spawnSync(process.execPath, [script, root], { encoding: 'utf8' });

  it('prints file:line: problem — fix and exits 1 on violations', () => {
    const r = run(workspace({ 'apps/cli/src/cli.ts': "import { Command } from 'commander';\n\nimport '../../../packages/core-archive/src/x.ts';\n" }));
    expect(r.status).toBe(1);
    expect(r.stdout.trim().split('\n')).toEqual([expect.stringMatching(/^apps\/cli\/src\/cli\.ts:3: relative import .+ — import '@backup-manager\/core-archive' .+$/)]);
    expect(r.stderr).toMatch(/1 violation\(s\)/);
  });

  it('exits 0 on a clean workspace and 2 when the root is not a workspace', () => {
    const clean = run(workspace());
    expect(clean.status).toBe(0);
    expect(clean.stdout).toMatch(/^check-boundaries: 8 packages, \d+ files, no violations$/m);
    const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'check-boundaries-empty-'));
    made.push(empty);
    const none = run(empty);
    expect(none.status).toBe(2);
    expect(none.stderr).toMatch(/has no package\.json: give the workspace root/);
  });

  it('does nothing when imported rather than run', () => {
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', `await import(${JSON.stringify(script)});`], { encoding: 'utf8' });
    expect({ status: r.status, stdout: r.stdout, stderr: r.stderr }).toEqual({ status: 0, stdout: '', stderr: '' });
  });
});

describe('the real workspace', () => {
  it('follows every rule', () => {
    expect(checkBoundaries(realRoot).map(formatViolation)).toEqual([]);
  });
});
