import { createHash, createDecipheriv } from 'node:crypto';
import { zstdDecompressSync } from 'node:zlib';
import { LocalBackend, Repository, cryptoMaterial, idToBytes, openBlob, readPackHeader } from '@backup-manager/core-archive';
import { loadIndexTolerant } from './load-index.ts';
const repo = await Repository.open(new LocalBackend('/tmp/bamperf/repo'), 'pw');
const idx = await loadIndexTolerant(repo);
const ids = [...idx.packs.keys()];
const key = cryptoMaterial(repo).key;
for (const id of ids.slice(0, 3)) {
  const bytes = await repo.backend.load({ type: 'data', name: id });
  const blobs = idx.packs.get(id)!;
  let t = performance.now();
  createHash('sha256').update(bytes).digest('hex');
  const tHash = performance.now() - t;
  t = performance.now();
  await readPackHeader(async (o, l) => bytes.subarray(o, o + l), bytes.byteLength, key, id);
  const tHeader = performance.now() - t;
  t = performance.now();
  let open = 0, hash = 0, raw = 0, zstdCount = 0;
  for (const b of blobs) {
    const t0 = performance.now();
    const plain = openBlob(key, b.type, idToBytes(b.id), bytes.subarray(b.offset, b.offset + b.length), b.rawLength, 'x');
    const t1 = performance.now();
    createHash('sha256').update(plain).digest('hex');
    hash += performance.now() - t1; open += t1 - t0; raw += plain.byteLength;
  }
  // decipher only
  t = performance.now();
  let zt = 0;
  for (const b of blobs) {
    const env = bytes.subarray(b.offset, b.offset + b.length);
    const d = createDecipheriv('aes-256-gcm', key, env.subarray(0, 12), { authTagLength: 16 });
    d.setAuthTag(env.subarray(env.length - 16));
    const pre = Buffer.from(b.type === 'data' ? 'bam:blob:data:' : 'bam:blob:tree:'); d.setAAD(Buffer.concat([pre, idToBytes(b.id)]));
    const p = Buffer.concat([d.update(env.subarray(12, env.length - 16)), d.final()]);
    if (p[0] === 1) { zstdCount++; const z0 = performance.now(); zstdDecompressSync(p.subarray(1), { maxOutputLength: Math.max(1, b.rawLength) }); zt += performance.now() - z0; }
  }
  const tDec = performance.now() - t;
  console.log({ pack: id.slice(0, 8), size: bytes.byteLength, blobs: blobs.length, raw, tHash: tHash.toFixed(0), tHeader: tHeader.toFixed(0), open: open.toFixed(0), hash: hash.toFixed(0), decipherPlusZstd: tDec.toFixed(0), zstd: zt.toFixed(0), zstdCount });
}
