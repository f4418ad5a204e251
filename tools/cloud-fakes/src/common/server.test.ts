// Checks the shared HTTP base: generic faults, logging with final status, crash handling, control plane, close().

import { Agent, request } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import type { FaultAction } from './faults.ts';
import { resetSocket, sendJson, startHttpFake } from './server.ts';

type Fake = Awaited<ReturnType<typeof startHttpFake>>;
let fake: Fake | undefined;
afterEach(async () => {
  await fake?.close();
  fake = undefined;
});

const envelope = (status: number, message: string) => ({ headers: { 'x-service': 'test' }, body: { error: { status, message } } });

async function start(): Promise<{ fake: Fake; seen: Array<{ path: string; body: string; fault: FaultAction | undefined }> }> {
  const seen: Array<{ path: string; body: string; fault: FaultAction | undefined }> = [];
  fake = await startHttpFake(
    (req, res, ctx) => {
      seen.push({ path: ctx.url.pathname, body: ctx.body.toString(), fault: ctx.fault });
      if (ctx.url.pathname === '/crash') throw new Error('boom');
      if (ctx.fault?.kind === 'reset-after') {
        ctx.note('stored, then reset');
        resetSocket(res);
        return;
      }
      sendJson(res, 200, { ok: true, method: req.method });
    },
    { serviceName: 'test', errorEnvelope: envelope },
  );
  return { fake, seen };
}

describe('startHttpFake', () => {
  it('serves on loopback and logs each request with its final status and body size', async () => {
    const { fake, seen } = await start();
    expect(fake.url).toBe(`http://127.0.0.1:${fake.port}`);
    const res = await fetch(`${fake.url}/items?x=1`, { method: 'POST', body: 'hello', headers: { authorization: 'Bearer t0k' } });
    expect(await res.json()).toEqual({ ok: true, method: 'POST' });
    expect(seen).toEqual([{ path: '/items', body: 'hello', fault: undefined }]);
    expect(fake.log.entries).toEqual([
      expect.objectContaining({ seq: 1, method: 'POST', path: '/items', query: { x: '1' }, status: 200, requestBytes: 5 }),
    ]);
    expect(fake.log.entries[0]?.headers['authorization']).toBe('Bearer [redacted]');
  });

  it("answers a 'status' fault in the service envelope with Retry-After, without calling the handler", async () => {
    const { fake, seen } = await start();
    fake.faults.add({ path: '/items', action: { kind: 'status', status: 429, retryAfterSeconds: 3 } });
    const res = await fetch(`${fake.url}/items`);
    expect(res.status).toBe(429);
    expect(res.headers.get('retry-after')).toBe('3');
    expect(res.headers.get('x-service')).toBe('test');
    expect(await res.json()).toEqual({ error: { status: 429, message: 'Too Many Requests' } });
    expect(seen).toEqual([]);
    expect(fake.log.entries[0]).toMatchObject({ status: 429, fault: 'status' });
  });

  it("drops the connection for 'reset-before' and passes 'reset-after' to the handler", async () => {
    const { fake, seen } = await start();
    fake.faults.add({ method: 'PUT', action: { kind: 'reset-before' } });
    fake.faults.add({ method: 'PUT', nth: 2, action: { kind: 'reset-after' } });
    await expect(fetch(`${fake.url}/chunk`, { method: 'PUT', body: 'a' })).rejects.toThrow();
    expect(seen).toEqual([]);
    await expect(fetch(`${fake.url}/chunk`, { method: 'PUT', body: 'b' })).rejects.toThrow();
    expect(seen).toEqual([{ path: '/chunk', body: 'b', fault: { kind: 'reset-after' } }]);
    const ok = await fetch(`${fake.url}/chunk`, { method: 'PUT', body: 'c' });
    expect(ok.status).toBe(200);
    expect(fake.log.entries.map((e) => [e.status, e.fault, e.note])).toEqual([
      [0, 'reset-before', 'socket reset before applying the request'],
      [0, 'reset-after', 'stored, then reset'],
      [200, undefined, undefined],
    ]);
  });

  it('turns a handler crash into a 500 in the service envelope', async () => {
    const { fake } = await start();
    const res = await fetch(`${fake.url}/crash`);
    expect(res.status).toBe(500);
    expect(await res.json()).toEqual({ error: { status: 500, message: 'Internal error in the fake' } });
    expect(fake.log.entries[0]?.note).toContain('boom');
  });

  it('accepts fault rules and serves the log through the /__fake/ control plane, unlogged', async () => {
    const { fake } = await start();
    const added = await fetch(`${fake.url}/__fake/faults`, {
      method: 'POST',
      body: JSON.stringify({ method: 'GET', path: { regex: '^/it' }, times: 'Infinity', action: { kind: 'status', status: 503 } }),
    });
    expect(added.status).toBe(201);
    expect((await fetch(`${fake.url}/items`)).status).toBe(503);
    expect((await fetch(`${fake.url}/items`)).status).toBe(503);
    const log = (await (await fetch(`${fake.url}/__fake/requests`)).json()) as { entries: unknown[] };
    expect(log.entries).toHaveLength(2);
    expect((await fetch(`${fake.url}/__fake/faults`, { method: 'DELETE' })).status).toBe(204);
    expect((await fetch(`${fake.url}/items`)).status).toBe(200);
    const bad = await fetch(`${fake.url}/__fake/faults`, { method: 'POST', body: '{"path":"/x"}' });
    expect(bad.status).toBe(400);
  });

  it('closes even with an idle keep-alive connection open', async () => {
    const { fake } = await start();
    await new Promise<void>((resolve, reject) => {
      const req = request(`${fake.url}/items`, { agent: new Agent({ keepAlive: true }) }, (res) => {
        res.resume();
        res.on('end', resolve);
      });
      req.on('error', reject);
      req.end();
    });
    const started = Date.now();
    await fake.close();
    expect(Date.now() - started).toBeLessThan(1000);
  });
});
