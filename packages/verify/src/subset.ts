/**
 * Which packs a data check reads: all of them, restic's buckets (`--read-data-subset n/t`: the packs whose id's
 * first byte modulo t is n-1), a random percentage, random packs up to a byte budget, or an explicit list (the
 * rotation's slice). Randomness is injected so that tests can fix it.
 */
import { BackupError } from '@backup-manager/core-archive';

export type PackSelection =
  | { kind: 'all' }
  | { kind: 'bucket'; bucket: number; of: number }
  | { kind: 'percent'; percent: number }
  | { kind: 'bytes'; bytes: number }
  | { kind: 'packs'; ids: readonly string[]; label?: string };

export interface PackRef {
  id: string;
  size: number;
}

/** The largest `t` of `n/t`: buckets are decided by the first byte of the pack id. */
export const MAX_BUCKETS = 256;

/**
 * Parses `n/t`, `x%` or a size. Sizes are delegated to `parseSize` (the CLI passes @backup-manager/config's, which
 * knows `500MiB`, `2G`, …) so that the units are the same as everywhere else.
 */
export function parseDataSubset(text: string, parseSize: (s: string) => number): PackSelection {
  const t = text.trim();
  const bucket = /^(\d+)\s*\/\s*(\d+)$/.exec(t);
  if (bucket) {
    const n = Number(bucket[1]);
    const of = Number(bucket[2]);
    if (of < 1 || of > MAX_BUCKETS || n < 1 || n > of) {
      throw new BackupError('INVALID_ARGUMENT', `read-data subset "${text}": use n/t with 1 ≤ n ≤ t ≤ ${MAX_BUCKETS}, e.g. 1/5`);
    }
    return { kind: 'bucket', bucket: n, of };
  }
  const pct = /^(\d+(?:\.\d+)?|\.\d+)\s*%$/.exec(t);
  if (pct) {
    const percent = Number(pct[1]);
    if (!(percent > 0 && percent <= 100)) throw new BackupError('INVALID_ARGUMENT', `read-data subset "${text}": a percentage must be above 0 and at most 100`);
    return { kind: 'percent', percent };
  }
  let bytes: number;
  try {
    bytes = parseSize(t);
  } catch (e) {
    throw new BackupError('INVALID_ARGUMENT', `read-data subset "${text}" is not n/t (e.g. 1/5), a percentage (e.g. 5%) or a size (e.g. 500MiB)`, { cause: e });
  }
  if (!(bytes > 0)) throw new BackupError('INVALID_ARGUMENT', `read-data subset "${text}": the size must be more than 0`);
  return { kind: 'bytes', bytes };
}

/** Fisher–Yates on a copy. */
function shuffled<T>(items: readonly T[], random: () => number): T[] {
  const a = items.slice();
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

/** The packs to read, sorted by id. */
export function selectPacks(packs: readonly PackRef[], selection: PackSelection, random: () => number = Math.random): PackRef[] {
  let chosen: PackRef[];
  switch (selection.kind) {
    case 'all':
      chosen = packs.slice();
      break;
    case 'bucket':
      chosen = packs.filter((p) => parseInt(p.id.slice(0, 2), 16) % selection.of === selection.bucket - 1);
      break;
    case 'percent': {
      // restic: round, but at least one pack when any is asked for.
      let count = Math.round((packs.length * selection.percent) / 100);
      if (count === 0 && packs.length > 0) count = 1;
      chosen = shuffled(packs, random).slice(0, count);
      break;
    }
    case 'bytes': {
      chosen = [];
      let total = 0;
      for (const p of shuffled(packs, random)) {
        if (total + p.size > selection.bytes) {
          // At least one pack is read, even when every pack is larger than the budget.
          if (chosen.length === 0) chosen.push(p);
          continue;
        }
        chosen.push(p);
        total += p.size;
      }
      break;
    }
    case 'packs': {
      const wanted = new Set(selection.ids);
      chosen = packs.filter((p) => wanted.has(p.id));
      break;
    }
  }
  return chosen.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

export function describeSelection(selection: PackSelection | undefined): string {
  if (!selection) return 'none';
  switch (selection.kind) {
    case 'all':
      return 'all';
    case 'bucket':
      return `bucket ${selection.bucket}/${selection.of}`;
    case 'percent':
      return `${selection.percent}%`;
    case 'bytes':
      return `${selection.bytes} bytes`;
    case 'packs':
      return selection.label ?? `${selection.ids.length} packs`;
  }
}
