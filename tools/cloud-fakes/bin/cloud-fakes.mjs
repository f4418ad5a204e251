#!/usr/bin/env node
// Starts one cloud fake (gdrive, dropbox or onedrive) on loopback, prints its URL and a fresh access + refresh
// token, and runs until Ctrl-C. Runs straight from the TypeScript sources (Node >= 22.18 / 24 strips types).

import { parseArgs } from 'node:util';

const USAGE = `usage: cloud-fakes gdrive|dropbox|onedrive [--port N] [--quota BYTES|unlimited] [--json]

  --port N        listen on 127.0.0.1:N (default: a free port)
  --quota BYTES   storage limit in bytes, or "unlimited"
  --json          print one JSON line {service,url,access_token,refresh_token,expires_in} instead of text

Control plane on the fake: GET /__fake/requests (log), POST /__fake/faults (add a fault rule as JSON),
DELETE /__fake/faults (clear).`;

/** Exported start functions tried for each service, first found wins. */
const STARTERS = {
  gdrive: ['startGdriveFake'],
  dropbox: ['startDropboxFake'],
  onedrive: ['startOnedriveFake', 'startOneDriveFake', 'startGraphFake'],
};

function fail(message) {
  process.stderr.write(`cloud-fakes: ${message}\n`);
  process.exit(2);
}

let parsed;
try {
  parsed = parseArgs({
    allowPositionals: true,
    options: {
      port: { type: 'string' },
      quota: { type: 'string' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
} catch (error) {
  fail(`${error.message}\n${USAGE}`);
}
const { values, positionals } = parsed;
if (values.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
const service = positionals[0];
if (positionals.length !== 1 || !Object.hasOwn(STARTERS, service)) fail(`name one service.\n${USAGE}`);

const options = {};
if (values.port !== undefined) {
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`--port must be an integer 0-65535, got ${values.port}`);
  options.port = port;
}
if (values.quota !== undefined) {
  if (values.quota === 'unlimited' || values.quota === 'null') options.quotaBytes = null;
  else {
    const quota = Number(values.quota);
    if (!Number.isSafeInteger(quota) || quota < 0) fail(`--quota must be a byte count or "unlimited", got ${values.quota}`);
    options.quotaBytes = quota;
  }
}

let fakes;
try {
  fakes = await import('../src/index.ts');
} catch (error) {
  fail(`could not load the fakes' TypeScript sources (needs Node >= 22.18 or 24 with type stripping): ${error.message}`);
}
// Only the Drive fake models unlimited storage (about.get omits `limit`); the others get a practically endless one.
if (options.quotaBytes === null && service !== 'gdrive') options.quotaBytes = Number.MAX_SAFE_INTEGER;
const start = STARTERS[service].map((name) => fakes[name]).find((fn) => typeof fn === 'function');
if (start === undefined) fail(`the ${service} fake is not available in this build of @backup-manager/cloud-fakes`);

const fake = await start(options);
const token = fake.tokens.issue();

if (values.json) {
  process.stdout.write(`${JSON.stringify({ service, url: fake.url, ...token })}\n`);
} else {
  const lines = [
    `${service} fake listening on ${fake.url}`,
    `access_token:  ${token.access_token}`,
    `refresh_token: ${token.refresh_token}`,
    `expires_in:    ${token.expires_in}`,
  ];
  if (service === 'gdrive') {
    lines.push(
      `SDK: rootUrl '${fake.url}/' on the client AND on every media call; OAuth2 endpoints { oauth2TokenUrl: '${fake.url}/token', oauth2AuthBaseUrl: '${fake.url}/auth' }`,
    );
  }
  lines.push('Ctrl-C to stop.');
  process.stdout.write(`${lines.join('\n')}\n`);
}

let stopping = false;
async function stop() {
  if (stopping) return;
  stopping = true;
  await fake.close();
  process.exit(0);
}
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
