/**
 * Test-only child program: backs up one path into an in-memory repository and prints what happened as JSON. The
 * archiver tests run it without the capabilities that let root read files whatever their permissions say.
 * Usage: node unprivileged-backup.ts <path>
 */
import { backup } from '../archiver/archiver.ts';
import { MemoryBackend } from '../backend/memory.ts';
import { initRepo } from './repo.ts';
import { entriesBelow } from './snapshot.ts';

const source = process.argv[2];
if (source === undefined) throw new Error('usage: node unprivileged-backup.ts <path>');
const repo = await initRepo(new MemoryBackend());
const result = await backup(repo, { paths: [source], workers: 1 });
const names = [...(await entriesBelow(repo, result.snapshot.tree, source)).keys()].sort();
process.stdout.write(JSON.stringify({ warnings: result.warnings, partial: result.partial, summary: result.snapshot.summary, names }));
