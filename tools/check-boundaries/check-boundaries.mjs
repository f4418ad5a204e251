#!/usr/bin/env node
/**
 * The package-boundary check behind `npm run lint`. It reads every workspace package's package.json and the
 * import/export specifiers of its sources (src/, bin/, test/), and reports each import that breaks the direction of
 * dependencies in ARCHITECTURE.md: scopes, relative or deep imports into another package, undeclared dependencies,
 * and cycles between packages. Plain Node ESM with no dependencies, so it runs anywhere, fast.
 *
 * Usage: node tools/check-boundaries/check-boundaries.mjs [workspace-root]   (exit 0 clean, 1 violations, 2 error)
 * As a library: `checkBoundaries(root)` returns the violations; `formatViolation(v)` prints one.
 */
import fs from 'node:fs';
import { isBuiltin } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * @typedef {object} Violation
 * @property {string} rule    stable id: scope-tag, direction, relative-escape, absolute-import, deep-import,
 *                            unknown-package, undeclared, peer-dependency, provider-sdk, cloud-sdk, cycle
 * @property {string} file    path relative to the workspace root, with `/`
 * @property {number} line    1-based
 * @property {string} message what is wrong — what to do
 */

/**
 * @typedef {object} ImportRef
 * @property {string} specifier
 * @property {number} line
 * @property {'import' | 'export' | 'dynamic'} kind
 */

export const SCOPES = /** @type {const} */ (['scope:core', 'scope:provider', 'scope:lib', 'scope:workflows', 'scope:app', 'scope:tool']);

/** Which scopes each scope may import outside test files. Nothing imports scope:app; only tools import tools. */
const MAY_IMPORT = {
  'scope:core': [],
  'scope:provider': ['scope:core'],
  'scope:lib': ['scope:core', 'scope:lib'],
  'scope:workflows': ['scope:core', 'scope:lib'],
  'scope:app': ['scope:core', 'scope:provider', 'scope:lib', 'scope:workflows'],
  'scope:tool': ['scope:core', 'scope:provider', 'scope:lib', 'scope:workflows', 'scope:tool'],
};

/** Why a scope may not import another, and what to do instead. */
const DIRECTION_FIX = {
  'scope:core': 'core-archive imports no workspace package: define the interface it needs in core-archive and let the caller pass an implementation',
  'scope:provider': 'a provider imports only @backup-manager/core-archive and its own SDK: move the shared code into core-archive, or compose the two in an app',
  'scope:lib': 'a library imports only core-archive and other libraries: depend on a narrow interface and let workflows or an app pass the implementation',
  'scope:workflows': 'workflows imports only libraries and core-archive: take a Backend (or another interface) as a parameter; providers are composed in the apps',
  'scope:app': 'an app may import any package but the tools',
  'scope:tool': 'a tool may import any package but the apps',
};

/**
 * The SDK each provider may import (package names; `@scope/*` matches a whole scope). A provider package
 * `packages/providers-<x>` not listed here may import no third-party package until its SDK is added.
 */
export const PROVIDER_SDKS = {
  'providers-gdrive': ['googleapis', '@googleapis/*', 'google-auth-library'],
  'providers-dropbox': ['dropbox'],
  'providers-onedrive': ['@microsoft/microsoft-graph-client', '@azure/msal-node'],
};

/** Cloud SDKs: only providers (their own), apps and tools may import them; core-archive and the libraries never. */
const CLOUD_SDKS = Object.values(PROVIDER_SDKS).flat();

const SOURCE_DIRS = ['src', 'bin', 'test'];
const SOURCE_EXTENSIONS = /\.(ts|mts|js|mjs)$/;
const SKIPPED_DIRS = new Set(['node_modules', 'dist']);
const DEPENDENCY_FIELDS = /** @type {const} */ (['dependencies', 'peerDependencies', 'devDependencies']);

// ---------------------------------------------------------------------------------------------------------------
// Scanning specifiers: a small tokenizer that knows comments, strings, template literals and regex literals, so an
// `import … from '…'` inside a string or a comment is not taken for a real one.

/**
 * @param {string} source
 * @returns {ImportRef[]}
 */
export function scanImports(source) {
  const tokens = tokenize(source);
  const lineOf = lineIndex(source);
  /** @type {ImportRef[]} */
  const found = [];
  const isPunct = (/** @type {Token | undefined} */ t, /** @type {string} */ v) => t !== undefined && t.t === 'punct' && t.v === v;
  const isLiteral = (/** @type {Token | undefined} */ t) => t !== undefined && (t.t === 'str' || (t.t === 'tpl' && t.complete === true));

  for (let k = 0; k < tokens.length; k++) {
    const tok = /** @type {Token} */ (tokens[k]);
    if (tok.t !== 'id' || (tok.v !== 'import' && tok.v !== 'export')) continue;
    if (isPunct(tokens[k - 1], '.')) continue; // obj.import, obj?.export
    const next = tokens[k + 1];
    if (next === undefined) continue;
    if (tok.v === 'import') {
      if (isPunct(next, '(')) {
        // import('x'), import('x', { with: … }); typeof import('x') in types counts too.
        const arg = tokens[k + 2];
        const after = tokens[k + 3];
        if (isLiteral(arg) && (isPunct(after, ')') || isPunct(after, ','))) {
          found.push({ specifier: /** @type {Token} */ (arg).v, line: lineOf(tok.pos), kind: 'dynamic' });
        }
        continue;
      }
      if (isPunct(next, '.')) continue; // import.meta
      if (next.t === 'str') {
        found.push({ specifier: next.v, line: lineOf(tok.pos), kind: 'import' });
        continue;
      }
    } else if (!isPunct(next, '*') && !isPunct(next, '{') && !(next.t === 'id' && next.v === 'type')) {
      continue; // export const, export default, export function, …
    }
    // import … from 'x' / export … from 'x': the clause ends at `from` + string, or gives up at a statement end.
    for (let j = k + 1; j < tokens.length; j++) {
      const u = /** @type {Token} */ (tokens[j]);
      if (u.t === 'punct' && (u.v === ';' || u.v === '=' || u.v === '(')) break;
      if (u.t === 'id' && (u.v === 'import' || u.v === 'export')) break;
      if (u.t === 'id' && u.v === 'from' && tokens[j + 1]?.t === 'str') {
        found.push({ specifier: /** @type {Token} */ (tokens[j + 1]).v, line: lineOf(tok.pos), kind: tok.v === 'import' ? 'import' : 'export' });
        break;
      }
      // A string in the clause is only legal as an arbitrary export name: `{ "a-b" as ab }`.
      if (u.t === 'str' && !isPunct(tokens[j - 1], '{') && !isPunct(tokens[j - 1], ',')) break;
    }
  }
  return found;
}

/**
 * @typedef {object} Token
 * @property {'id' | 'str' | 'tpl' | 'num' | 'regex' | 'punct'} t
 * @property {string} v
 * @property {number} pos
 * @property {boolean} [complete]  for a template piece: true when the literal has no substitutions
 */

const REGEX_AFTER_WORDS = new Set(['return', 'typeof', 'instanceof', 'in', 'of', 'new', 'delete', 'void', 'throw', 'case', 'do', 'else', 'yield', 'await']);

/**
 * @param {string} src
 * @returns {Token[]}
 */
function tokenize(src) {
  /** @type {Token[]} */
  const tokens = [];
  /** @type {('brace' | 'tpl')[]} what each open `{` is: a block/object, or a template's `${` */
  const braces = [];
  const n = src.length;
  let i = 0;
  if (src.startsWith('#!')) i = skipLine(src, 0);

  /** Reads a template literal piece starting just after '`' or after the `}` that closes a substitution. */
  const readTemplate = (/** @type {number} */ from, /** @type {number} */ pos, /** @type {boolean} */ head) => {
    let j = from;
    let text = '';
    while (j < n) {
      const c = src[j];
      if (c === '\\') {
        text += src[j + 1] ?? '';
        j += 2;
      } else if (c === '`') {
        tokens.push({ t: 'tpl', v: text, pos, complete: head });
        return j + 1;
      } else if (c === '$' && src[j + 1] === '{') {
        tokens.push({ t: 'tpl', v: text, pos, complete: false });
        braces.push('tpl');
        return j + 2;
      } else {
        text += c;
        j++;
      }
    }
    tokens.push({ t: 'tpl', v: text, pos, complete: false });
    return n;
  };

  while (i < n) {
    const c = /** @type {string} */ (src[i]);
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r' || c === '\f' || c === '\v' || c === '\u00a0' || c === '\ufeff') {
      i++;
    } else if (c === '/' && src[i + 1] === '/') {
      i = skipLine(src, i);
    } else if (c === '/' && src[i + 1] === '*') {
      const end = src.indexOf('*/', i + 2);
      i = end < 0 ? n : end + 2;
    } else if (c === '"' || c === "'") {
      let j = i + 1;
      let text = '';
      while (j < n && src[j] !== c && src[j] !== '\n') {
        if (src[j] === '\\') {
          text += src[j + 1] ?? '';
          j += 2;
        } else {
          text += src[j];
          j++;
        }
      }
      tokens.push({ t: 'str', v: text, pos: i });
      i = j + 1;
    } else if (c === '`') {
      i = readTemplate(i + 1, i, true);
    } else if (c === '{') {
      braces.push('brace');
      tokens.push({ t: 'punct', v: c, pos: i });
      i++;
    } else if (c === '}') {
      if (braces.pop() === 'tpl') {
        i = readTemplate(i + 1, i, false);
      } else {
        tokens.push({ t: 'punct', v: c, pos: i });
        i++;
      }
    } else if (/[A-Za-z_$\u0080-\uffff]/.test(c) || (c === '#' && /[A-Za-z_$]/.test(src[i + 1] ?? ''))) {
      let j = i + 1;
      while (j < n && /[\w$\u0080-\uffff]/.test(/** @type {string} */ (src[j]))) j++;
      tokens.push({ t: 'id', v: src.slice(i, j), pos: i });
      i = j;
    } else if (/[0-9]/.test(c) || (c === '.' && /[0-9]/.test(src[i + 1] ?? ''))) {
      let j = i + 1;
      while (j < n && /[\w.]/.test(/** @type {string} */ (src[j]))) j++;
      tokens.push({ t: 'num', v: src.slice(i, j), pos: i });
      i = j;
    } else if (c === '/' && regexAllowed(tokens[tokens.length - 1])) {
      const end = regexEnd(src, i);
      if (end < 0) {
        tokens.push({ t: 'punct', v: c, pos: i });
        i++;
      } else {
        tokens.push({ t: 'regex', v: src.slice(i, end), pos: i });
        i = end;
      }
    } else {
      tokens.push({ t: 'punct', v: c, pos: i });
      i++;
    }
  }
  return tokens;
}

/** @param {string} src @param {number} i */
function skipLine(src, i) {
  const end = src.indexOf('\n', i);
  return end < 0 ? src.length : end;
}

/** A `/` starts a regex literal unless it follows something that ends an expression. @param {Token | undefined} prev */
function regexAllowed(prev) {
  if (prev === undefined) return true;
  if (prev.t === 'id') return REGEX_AFTER_WORDS.has(prev.v);
  if (prev.t === 'punct') return prev.v !== ')' && prev.v !== ']' && prev.v !== '}';
  return false;
}

/** The index just after a regex literal (with its flags) starting at `start`, or -1 when it is not one. */
function regexEnd(/** @type {string} */ src, /** @type {number} */ start) {
  let inClass = false;
  for (let j = start + 1; j < src.length; j++) {
    const c = src[j];
    if (c === '\n') return -1;
    if (c === '\\') j++;
    else if (c === '[') inClass = true;
    else if (c === ']') inClass = false;
    else if (c === '/' && !inClass) {
      let k = j + 1;
      while (k < src.length && /[a-z]/i.test(/** @type {string} */ (src[k]))) k++;
      return k;
    }
  }
  return -1;
}

/** @param {string} source @returns {(pos: number) => number} 1-based line of an offset */
function lineIndex(source) {
  const starts = [0];
  for (let i = 0; i < source.length; i++) if (source.charCodeAt(i) === 10) starts.push(i + 1);
  return (pos) => {
    let lo = 0;
    let hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (/** @type {number} */ (starts[mid]) <= pos) lo = mid;
      else hi = mid - 1;
    }
    return lo + 1;
  };
}

// ---------------------------------------------------------------------------------------------------------------
// The workspace.

/**
 * @typedef {object} WorkspacePackage
 * @property {string} name
 * @property {string} version
 * @property {string} dir        absolute
 * @property {string} relDir     relative to the root, with `/`
 * @property {string} manifest   relative path of its package.json
 * @property {string} manifestText
 * @property {string | undefined} expectedScope  from its folder
 * @property {string} scope      its scope tag, or the expected one when the tag is missing or wrong
 * @property {Record<string, Record<string, string>>} deps  by field
 * @property {unknown} exports
 */

/** @param {string} file */
function readJson(file) {
  const text = fs.readFileSync(file, 'utf8');
  try {
    return { json: JSON.parse(text), text };
  } catch (e) {
    throw new Error(`${file} is not valid JSON: ${/** @type {Error} */ (e).message}`);
  }
}

/** The folders the root package.json's `workspaces` globs name (`dir`, `dir/*`). @param {string} root @param {string[]} globs */
function workspaceDirs(root, globs) {
  const out = new Set();
  for (const glob of globs) {
    /** @type {string[]} */
    let dirs = [''];
    for (const part of glob.split('/').filter((p) => p !== '' && p !== '.')) {
      /** @type {string[]} */
      const nextDirs = [];
      for (const d of dirs) {
        if (part.includes('*')) {
          const re = new RegExp(`^${part.split('*').map(escapeRegex).join('.*')}$`);
          let entries = [];
          try {
            entries = fs.readdirSync(path.join(root, d), { withFileTypes: true });
          } catch {
            continue;
          }
          for (const e of entries) if (e.isDirectory() && re.test(e.name) && !SKIPPED_DIRS.has(e.name)) nextDirs.push(d ? `${d}/${e.name}` : e.name);
        } else {
          nextDirs.push(d ? `${d}/${part}` : part);
        }
      }
      dirs = nextDirs;
    }
    for (const d of dirs) if (fs.existsSync(path.join(root, d, 'package.json'))) out.add(d);
  }
  return [...out].sort();
}

/** @param {string} s */
function escapeRegex(s) {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The scope a package's folder calls for. @param {string} relDir */
export function expectedScope(relDir) {
  const [top, name = ''] = relDir.split('/');
  if (top === 'apps') return 'scope:app';
  if (top === 'tools') return 'scope:tool';
  if (top === 'packages') {
    if (name === 'core-archive') return 'scope:core';
    if (name.startsWith('providers-')) return 'scope:provider';
    if (name === 'workflows') return 'scope:workflows';
    return 'scope:lib';
  }
  return undefined;
}

/** 1-based line of the first line containing `needle` (after the line containing `after`, when given). */
function lineOfText(/** @type {string} */ text, /** @type {string} */ needle, /** @type {string | undefined} */ after) {
  const lines = text.split('\n');
  let from = 0;
  if (after !== undefined) {
    const a = lines.findIndex((l) => l.includes(after));
    if (a >= 0) from = a;
  }
  for (let i = from; i < lines.length; i++) if (/** @type {string} */ (lines[i]).includes(needle)) return i + 1;
  return 1;
}

/** @param {string} dir @param {string[]} out */
function walk(dir, out) {
  let entries;
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) {
    const full = path.join(dir, e.name);
    if (e.isDirectory()) {
      if (!SKIPPED_DIRS.has(e.name)) walk(full, out);
    } else if (e.isFile() && SOURCE_EXTENSIONS.test(e.name)) {
      out.push(full);
    }
  }
}

/** `*.test.ts` (and .mts/.js/.mjs) anywhere, or anything under the package's test/ folder. @param {string} relToPackage */
export function isTestFile(relToPackage) {
  return /\.test\.(ts|mts|js|mjs)$/.test(relToPackage) || relToPackage.startsWith('test/');
}

/** `@scope/name/sub/path` → { name: '@scope/name', subpath: 'sub/path' }. @param {string} spec */
function splitBare(spec) {
  const parts = spec.split('/');
  const take = spec.startsWith('@') ? 2 : 1;
  return { name: parts.slice(0, take).join('/'), subpath: parts.slice(take).join('/') };
}

/** Whether `./subpath` is one of a package's declared exports (patterns with `*`; a null target blocks). */
function isExported(/** @type {unknown} */ exportsField, /** @type {string} */ subpath) {
  if (subpath === '') return true;
  if (exportsField === null || typeof exportsField !== 'object' || Array.isArray(exportsField)) return false;
  const keys = Object.keys(exportsField).filter((k) => k.startsWith('.'));
  const wanted = `./${subpath}`;
  let allowed = false;
  for (const key of keys) {
    const re = new RegExp(`^${key.split('*').map(escapeRegex).join('.+')}$`);
    if (!re.test(wanted)) continue;
    if (/** @type {Record<string, unknown>} */ (exportsField)[key] === null) return false;
    allowed = true;
  }
  return allowed;
}

/** The specifiers a package's exports allow, for messages: ['@x/core', '@x/core/testing']. */
function exportSpecifiers(/** @type {string} */ name, /** @type {unknown} */ exportsField) {
  if (exportsField !== null && typeof exportsField === 'object' && !Array.isArray(exportsField)) {
    const keys = Object.keys(exportsField).filter((k) => k.startsWith('.') && /** @type {Record<string, unknown>} */ (exportsField)[k] !== null);
    if (keys.length > 0) return keys.map((k) => (k === '.' ? name : `${name}/${k.slice(2)}`));
  }
  return [name];
}

/** @param {string} name @param {string[]} list entries like `dropbox` or `@googleapis/*` */
function inList(name, list) {
  return list.some((entry) => (entry.endsWith('/*') ? name.startsWith(entry.slice(0, -1)) : name === entry));
}

// ---------------------------------------------------------------------------------------------------------------
// The check.

/**
 * Checks the workspace at `root` and returns every violation, sorted by file and line.
 * @param {string} root
 * @returns {Violation[]}
 */
export function checkBoundaries(root) {
  return analyzeWorkspace(root).violations;
}

/**
 * checkBoundaries with the counts the CLI prints.
 * @param {string} root
 * @returns {{ violations: Violation[], packages: number, files: number }}
 */
export function analyzeWorkspace(root) {
  root = path.resolve(root);
  const rootManifest = path.join(root, 'package.json');
  if (!fs.existsSync(rootManifest)) throw new Error(`${root} has no package.json: give the workspace root`);
  const rootPkg = readJson(rootManifest).json;
  const globs = Array.isArray(rootPkg.workspaces) ? rootPkg.workspaces : (rootPkg.workspaces?.packages ?? []);
  if (globs.length === 0) throw new Error(`${rootManifest} declares no workspaces`);
  const rootDeps = { ...rootPkg.dependencies, ...rootPkg.devDependencies };

  /** @type {Violation[]} */
  const violations = [];
  const report = (/** @type {string} */ rule, /** @type {string} */ file, /** @type {number} */ line, /** @type {string} */ message) =>
    violations.push({ rule, file, line, message });

  /** @type {WorkspacePackage[]} */
  const packages = [];
  for (const relDir of workspaceDirs(root, globs)) {
    const manifest = `${relDir}/package.json`;
    const { json, text } = readJson(path.join(root, manifest));
    const name = typeof json.name === 'string' ? json.name : relDir;
    const expected = expectedScope(relDir);
    const tags = Array.isArray(json.nx?.tags) ? json.nx.tags.filter((/** @type {unknown} */ t) => typeof t === 'string') : [];
    const scopeTags = tags.filter((/** @type {string} */ t) => t.startsWith('scope:'));
    const suggest = expected ?? 'scope:lib';
    const tagLine = lineOfText(text, '"tags"');
    let scope = expected;
    if (scopeTags.length === 0) {
      report('scope-tag', manifest, lineOfText(text, '"name"'), `${name} has no nx scope tag — add "nx": { "tags": ["${suggest}"] } to its package.json`);
    } else if (scopeTags.length > 1) {
      report('scope-tag', manifest, tagLine, `${name} has ${scopeTags.length} scope tags (${scopeTags.join(', ')}) — keep one: "${suggest}"`);
    } else if (!(/** @type {readonly string[]} */ (SCOPES)).includes(scopeTags[0])) {
      report('scope-tag', manifest, tagLine, `${name} has the unknown tag ${scopeTags[0]} — use one of ${SCOPES.join(', ')} ("${suggest}" for ${relDir})`);
    } else if (expected !== undefined && scopeTags[0] !== expected) {
      report('scope-tag', manifest, tagLine, `${name} is in ${relDir.split('/')[0]}/ but tagged ${scopeTags[0]} — tag it "${expected}" (or move the package to the folder its scope belongs in)`);
    } else {
      scope = scopeTags[0];
    }
    packages.push({
      name,
      version: typeof json.version === 'string' ? json.version : '0.0.0',
      dir: path.join(root, relDir),
      relDir,
      manifest,
      manifestText: text,
      expectedScope: expected,
      scope: scope ?? 'scope:lib',
      deps: Object.fromEntries(DEPENDENCY_FIELDS.map((f) => [f, json[f] && typeof json[f] === 'object' ? json[f] : {}])),
      exports: json.exports,
    });
  }
  const byName = new Map(packages.map((p) => [p.name, p]));
  const internalScopes = new Set(packages.filter((p) => p.name.startsWith('@')).map((p) => p.name.split('/')[0]));

  /** Package graph for the cycle check: from → to → where the edge is first seen. */
  /** @type {Map<string, Map<string, { file: string, line: number }>>} */
  const edges = new Map(packages.map((p) => [p.name, new Map()]));
  const addEdge = (/** @type {string} */ from, /** @type {string} */ to, /** @type {string} */ file, /** @type {number} */ line) => {
    const m = /** @type {Map<string, { file: string, line: number }>} */ (edges.get(from));
    if (!m.has(to)) m.set(to, { file, line });
  };

  let fileCount = 0;
  for (const pkg of packages) {
    /** @type {string[]} */
    const files = [];
    for (const sub of SOURCE_DIRS) walk(path.join(pkg.dir, sub), files);
    files.sort();
    fileCount += files.length;
    for (const file of files) {
      const relToPackage = path.relative(pkg.dir, file).split(path.sep).join('/');
      const relFile = `${pkg.relDir}/${relToPackage}`;
      const test = isTestFile(relToPackage);
      for (const ref of scanImports(fs.readFileSync(file, 'utf8'))) {
        checkImport({ pkg, file, relFile, test, ref, byName, internalScopes, rootDeps, root, report, addEdge });
      }
    }
  }

  // A provider takes the core as a peer, so that there is one copy of its types and error classes.
  for (const pkg of packages) {
    if (pkg.scope !== 'scope:provider') continue;
    for (const dep of Object.keys(pkg.deps.dependencies ?? {})) {
      if (byName.get(dep)?.scope !== 'scope:core') continue;
      report('peer-dependency', pkg.manifest, lineOfText(pkg.manifestText, `"${dep}"`, '"dependencies"'),
        `${pkg.name} lists ${dep} in dependencies — move it to peerDependencies (and devDependencies for its own tests): a provider takes the core as a peer so there is one copy of its types and error classes`);
    }
  }

  // Declared dependencies on workspace packages are edges too (npm and Nx follow them), placed at their line.
  for (const pkg of packages) {
    for (const field of DEPENDENCY_FIELDS) {
      for (const dep of Object.keys(pkg.deps[field] ?? {})) {
        if (dep !== pkg.name && byName.has(dep)) addEdge(pkg.name, dep, pkg.manifest, lineOfText(pkg.manifestText, `"${dep}"`, `"${field}"`));
      }
    }
  }
  for (const cycle of findCycles(edges)) {
    const first = /** @type {{ file: string, line: number }} */ (edges.get(/** @type {string} */ (cycle[0]))?.get(/** @type {string} */ (cycle[1])));
    report('cycle', first.file, first.line,
      `import cycle between workspace packages: ${cycle.join(' → ')} — break it: move what they share into a package below them, or invert one edge with an interface`);
  }

  violations.sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : a.line - b.line || a.message.localeCompare(b.message)));
  return { violations, packages: packages.length, files: fileCount };
}

/**
 * @param {{
 *   pkg: WorkspacePackage, file: string, relFile: string, test: boolean, ref: ImportRef,
 *   byName: Map<string, WorkspacePackage>, internalScopes: Set<string>, rootDeps: Record<string, string>, root: string,
 *   report: (rule: string, file: string, line: number, message: string) => void,
 *   addEdge: (from: string, to: string, file: string, line: number) => void,
 * }} ctx
 */
function checkImport(ctx) {
  const { pkg, file, relFile, test, ref, byName, root, report } = ctx;
  const spec = ref.specifier;
  const at = (/** @type {string} */ rule, /** @type {string} */ message) => report(rule, relFile, ref.line, message);

  if (spec.startsWith('.')) {
    const target = path.resolve(path.dirname(file), spec);
    const inside = path.relative(pkg.dir, target);
    if (inside.startsWith('..') || path.isAbsolute(inside)) {
      const owner = [...byName.values()].find((p) => target === p.dir || target.startsWith(p.dir + path.sep));
      at('relative-escape', owner
        ? `relative import '${spec}' leaves ${pkg.name} for ${owner.name}'s files — import '${owner.name}' by its package name (declared in package.json); export what you need from its src/index.ts`
        : `relative import '${spec}' leaves ${pkg.name} (${path.relative(root, target).split(path.sep).join('/')}) — keep the file inside the package, or put it in a workspace package and import it by name`);
    }
    return;
  }
  if (spec.startsWith('/') || spec.startsWith('file:')) {
    at('absolute-import', `absolute import '${spec}' — import a file of this package by a relative path, another package by its name`);
    return;
  }
  if (spec.startsWith('#') || spec.startsWith('data:') || spec.startsWith('node:') || isBuiltin(spec)) return;

  const { name, subpath } = splitBare(spec);
  const target = byName.get(name);

  if (target !== undefined) {
    if (target !== pkg) ctx.addEdge(pkg.name, target.name, relFile, ref.line);
    if (target !== pkg && !checkDirection(pkg, target, test, at)) return;
    if (!isExported(target.exports, subpath)) {
      const what = /^(src|dist)(\/|$)/.test(subpath) ? `deep import into ${name}'s internals ('${spec}')` : `'${spec}' is not one of ${name}'s exports`;
      at('deep-import', `${what} — import from ${exportSpecifiers(name, target.exports).map((s) => `'${s}'`).join(' or ')}; export what you need from its entry (src/index.ts)`);
    }
    if (target === pkg) return;
  } else {
    const scope = name.split('/')[0] ?? '';
    if (name.startsWith('@') && ctx.internalScopes.has(scope)) {
      at('unknown-package', `there is no workspace package named ${name} ('${spec}') — check the name (workspace packages: ${[...byName.keys()].filter((n) => n.startsWith(`${scope}/`)).join(', ')})`);
      return;
    }
    if (!test && pkg.scope === 'scope:provider') {
      const sdk = PROVIDER_SDKS[/** @type {keyof typeof PROVIDER_SDKS} */ (path.basename(pkg.relDir))] ?? [];
      if (!inList(name, sdk)) {
        at('provider-sdk', `${pkg.name} imports '${spec}', which is not its SDK (${sdk.length > 0 ? sdk.join(', ') : 'none listed'}) — a provider imports only @backup-manager/core-archive and its own SDK; if ${name} is part of that SDK, add it to PROVIDER_SDKS in tools/check-boundaries/check-boundaries.mjs`);
        return;
      }
    }
    if (!test && (pkg.scope === 'scope:core' || pkg.scope === 'scope:lib' || pkg.scope === 'scope:workflows') && inList(name, CLOUD_SDKS)) {
      at('cloud-sdk', `${pkg.name} (${pkg.scope}) imports the cloud SDK '${spec}' — cloud SDKs belong in a providers-* package that implements Backend; take a Backend as a parameter instead`);
      return;
    }
  }

  // Declared where it is needed: non-test code in dependencies or peerDependencies; tests may also use devDependencies
  // or the root's hoisted devDependencies.
  const { dependencies = {}, peerDependencies = {}, devDependencies = {} } = pkg.deps;
  const runtime = name in dependencies || name in peerDependencies;
  const wantPeer = pkg.scope === 'scope:provider' && target !== undefined;
  const field = wantPeer ? 'peerDependencies' : 'dependencies';
  const range = target !== undefined ? `"^${target.version}"` : 'its version range';
  if (test) {
    if (!runtime && !(name in devDependencies) && !(name in ctx.rootDeps)) {
      at('undeclared', `'${spec}' is imported by a test but ${pkg.name} does not declare ${name} — add "${name}": ${range} to its devDependencies (or to the root package.json's devDependencies when every package's tests use it)`);
    }
  } else if (!runtime) {
    at('undeclared', name in devDependencies
      ? `${name} is only a devDependency of ${pkg.name}, but non-test code imports '${spec}' — move it to ${field}${wantPeer ? '' : ', or to peerDependencies marked optional in peerDependenciesMeta when it is loaded only if present'}`
      : `${pkg.name} imports '${spec}' but does not declare ${name} — add "${name}": ${range} to its ${field} in ${pkg.manifest}`);
    return;
  }
}

/**
 * The scope rule for one import of a workspace package; reports and returns false when it is not allowed.
 * @param {WorkspacePackage} pkg @param {WorkspacePackage} target @param {boolean} test
 * @param {(rule: string, message: string) => void} at
 */
function checkDirection(pkg, target, test, at) {
  const from = `${pkg.name} (${pkg.scope})`;
  const to = `${target.name} (${target.scope})`;
  if (target.scope === 'scope:app') {
    at('direction', `${from} imports the app ${to} — nothing imports an app: move what both need into a library in packages/ and import that`);
    return false;
  }
  if (target.scope === 'scope:tool') {
    if (pkg.scope === 'scope:tool' || test) return true;
    at('direction', `${from} imports the tool ${to} outside a test — tools are not published: only test files (*.test.ts, test/**) may import them; move this code into a test file or the package's test/ folder, or what it needs from the tool into a package`);
    return false;
  }
  const allowed = /** @type {Record<string, string[]>} */ (MAY_IMPORT)[pkg.scope] ?? [];
  if (allowed.includes(target.scope) && !(pkg.scope === 'scope:provider' && target.name !== '@backup-manager/core-archive')) return true;
  at('direction', `${from} imports ${to} — ${/** @type {Record<string, string>} */ (DIRECTION_FIX)[pkg.scope]}`);
  return false;
}

/**
 * Every cycle in the package graph, one per strongly connected component, as a path starting and ending at the
 * component's first name: ['a', 'b', 'a'].
 * @param {Map<string, Map<string, unknown>>} edges
 * @returns {string[][]}
 */
function findCycles(edges) {
  let counter = 0;
  /** @type {Map<string, number>} */ const index = new Map();
  /** @type {Map<string, number>} */ const low = new Map();
  /** @type {string[]} */ const stack = [];
  const onStack = new Set();
  /** @type {string[][]} */ const components = [];
  const strongConnect = (/** @type {string} */ v) => {
    index.set(v, counter);
    low.set(v, counter);
    counter++;
    stack.push(v);
    onStack.add(v);
    for (const w of [...(edges.get(v)?.keys() ?? [])].sort()) {
      if (!index.has(w)) {
        strongConnect(w);
        low.set(v, Math.min(/** @type {number} */ (low.get(v)), /** @type {number} */ (low.get(w))));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(/** @type {number} */ (low.get(v)), /** @type {number} */ (index.get(w))));
      }
    }
    if (low.get(v) === index.get(v)) {
      /** @type {string[]} */ const component = [];
      let w;
      do {
        w = /** @type {string} */ (stack.pop());
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1) components.push(component.sort());
    }
  };
  for (const v of [...edges.keys()].sort()) if (!index.has(v)) strongConnect(v);

  // A shortest path from the component's first member back to itself, inside the component.
  return components.map((component) => {
    const members = new Set(component);
    const start = /** @type {string} */ (component[0]);
    /** @type {Map<string, string>} */ const previous = new Map();
    const queue = [start];
    while (queue.length > 0) {
      const v = /** @type {string} */ (queue.shift());
      for (const w of [...(edges.get(v)?.keys() ?? [])].sort()) {
        if (!members.has(w)) continue;
        if (w === start) {
          const cycle = [start];
          for (let x = v; x !== start; x = /** @type {string} */ (previous.get(x))) cycle.splice(1, 0, x);
          cycle.push(start);
          return cycle;
        }
        if (!previous.has(w)) {
          previous.set(w, v);
          queue.push(w);
        }
      }
    }
    return [...component, start];
  });
}

/** `file:line: what is wrong — what to do` @param {Violation} v */
export function formatViolation(v) {
  return `${v.file}:${v.line}: ${v.message}`;
}

// ---------------------------------------------------------------------------------------------------------------
// CLI: only when this file is the program, not when it is imported.

function invokedDirectly() {
  const argv1 = process.argv[1];
  if (argv1 === undefined) return false;
  try {
    return fs.realpathSync(argv1) === fs.realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (invokedDirectly()) {
  const root = path.resolve(process.argv[2] ?? path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..'));
  let result;
  try {
    result = analyzeWorkspace(root);
  } catch (e) {
    process.stderr.write(`check-boundaries: ${/** @type {Error} */ (e).message}\n`);
    process.exit(2);
  }
  for (const v of result.violations) process.stdout.write(formatViolation(v) + '\n');
  if (result.violations.length > 0) {
    process.stderr.write(`check-boundaries: ${result.violations.length} violation(s) in ${result.packages} packages, ${result.files} files (rules: ARCHITECTURE.md, tools/check-boundaries/check-boundaries.mjs)\n`);
    process.exitCode = 1;
  } else {
    process.stdout.write(`check-boundaries: ${result.packages} packages, ${result.files} files, no violations\n`);
  }
}
