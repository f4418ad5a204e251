import { LocalBackend, Repository } from '@backup-manager/core-archive';
import { loadIndexTolerant } from './load-index.ts';
import { literalPattern } from './recovery.ts';
const repo = await Repository.open(new LocalBackend('/tmp/bamperf/repo'), 'pw');
await loadIndexTolerant(repo);
const snap = (await repo.listSnapshots())[0]!;
const all: string[] = [];
const visit = async (id: string, dir: string): Promise<void> => {
  for (const n of (await repo.loadTree(id)).nodes) { const p = dir === '/' ? `/${n.name}` : `${dir}/${n.name}`; all.push(p); if (n.type === 'dir') await visit(n.subtree!, p); }
};
await visit(snap.snapshot.tree, '/');
const sample = all.filter((_, i) => i % 10 === 0);
// the same regex shape core's compilePattern builds for a literal absolute pattern
const res = sample.map((p) => new RegExp(`^${literalPattern(p).replace(/\\(.)/g, (_m, c: string) => '\\' + c).replace(/[.+^${}()|\]\/]/g, '\\$&')}$`));
const t = performance.now(); let hits = 0;
for (const p of all) if (res.some((r) => r.test(p))) hits++;
console.log({ nodes: all.length, patterns: res.length, hits, ms: Math.round(performance.now() - t), cpu: process.cpuUsage() });
