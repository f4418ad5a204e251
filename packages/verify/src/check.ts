/**
 * The repository check. The structure check proves that every snapshot's tree resolves, that every blob a tree
 * references is indexed, that every indexed pack exists and that its header (read and authenticated) agrees with
 * the index. The data check, for the packs a selection picks, reads each pack in pieces, authenticates its header,
 * and lets worker threads hash it against its name and open every blob (decrypt, decompress, re-hash against the
 * id); it runs while this thread loads the index (when it reads every pack) and checks the structure, and its
 * outcomes are judged once the structure check is done.
 *
 * Damage never stops the check: each problem becomes a typed finding, streamed as it is found. At the end one walk
 * over the snapshots' trees maps the damaged blobs to the snapshots and file paths they put at risk, and the summary
 * carries every finding with those paths. Only a failure to reach the repository at all (listing fails, a lost
 * connection, an interrupt) ends the check with an error.
 */
import { compareTime, cryptoMaterial, decodeTree, idToBytes, isBackupError, listLocks, openBlob, readPackHeader, releaseBytes, shortId } from '@backup-manager/core-archive';
import type { Id, IndexBlobEntry, Repository, SnapshotDocument, TreeDocument, TreeNode } from '@backup-manager/core-archive';
import { dataFile, isNote } from './findings.ts';
import type { AffectedSnapshot, CheckCounts, CheckEvent, CheckPhase, CheckSummary, Finding, FindingKind } from './findings.ts';
import { mapImpact } from './impact.ts';
import type { SnapshotRef } from './impact.ts';
import { isDamage, loadIndexTolerant } from './load-index.ts';
import type { LoadedIndex } from './load-index.ts';
import { headerMismatches } from './pack-verify.ts';
import type { HeaderMismatch, PackVerdict } from './pack-verify.ts';
import { VerifyPool, defaultVerifyWorkers } from './pool.ts';
import { readPacks } from './read-packs.ts';
import type { PackOutcome, PackReading, ReadPacksOptions } from './read-packs.ts';
import { describeSelection, selectPacks } from './subset.ts';
import type { PackRef, PackSelection } from './subset.ts';
import { eventStream, mapLimit, throwIfAborted } from './util.ts';


/** How long the tree walk runs before it lets the data check's reads and workers in (see walkTrees). */
const WALK_SLICE_MS = 4;
export interface CheckOptions {
  /** read the data of these packs; leave out for a structure check only */
  readData?: PackSelection;
  /** packs downloaded at once (default 4) */
  concurrency?: number;
  /** worker threads that decrypt and hash (default: up to 4, one per core); 0 runs on this thread */
  workers?: number;
  /**
   * Worker threads started before the repository was opened (startVerifyPool), so that they are ready when the
   * data reading starts: the check gives them the key, uses them instead of starting its own, and closes them.
   */
  pool?: VerifyPool;
  signal?: AbortSignal;
  /** random source for percentage and size subsets */
  random?: () => number;
  /** paths listed per snapshot in a finding's `affects` (default 50); the rest are counted */
  maxPathsPerFinding?: number;
  onEvent?: (e: CheckEvent) => void;
}

/** Runs the check, reporting events through `options.onEvent`, and resolves with the summary. */
export async function verifyRepository(repo: Repository, options: CheckOptions = {}): Promise<CheckSummary> {
  return new Checker(repo, options, (e) => options.onEvent?.(e)).run();
}

/** The same check as an async iterator of events; the last event is the summary, which is also the return value. */
export function checkRepository(repo: Repository, options: Omit<CheckOptions, 'onEvent'> = {}): AsyncGenerator<CheckEvent, CheckSummary> {
  return eventStream<CheckEvent, CheckSummary>((emit) => new Checker(repo, options, emit).run());
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

class Checker {
  private readonly repo: Repository;
  private readonly options: CheckOptions;
  private readonly emit: (e: CheckEvent) => void;
  private readonly started: Date;
  private readonly findings: Finding[] = [];
  /** blobs each finding puts at risk, for the impact walk */
  private readonly risk = new Map<Finding, Id[]>();
  private readonly atRisk = new Set<Id>();
  /** packs that already have a pack-level finding, so that their blobs are not reported again one by one */
  private readonly packFindings = new Map<Id, Finding>();
  private readonly blobFindings = new Set<string>();
  private readonly missingReported = new Set<Id>();
  private readonly recoverable = new Map<Id, IndexBlobEntry[]>();
  private readonly counts: CheckCounts = {
    snapshots: 0, indexFiles: 0, indexedPacks: 0, packFiles: 0, trees: 0, files: 0, packsRead: 0, blobsRead: 0, bytesRead: 0,
  };
  private readonly packsRead: Id[] = [];
  /** blobs that no index lists but whose (orphan) pack's header does: `repair index` recovers them */
  private readonly orphanBlobs = new Map<Id, { pack: Id; entry: IndexBlobEntry }>();
  private dataMs = 0;

  constructor(repo: Repository, options: CheckOptions, emit: (e: CheckEvent) => void) {
    this.repo = repo;
    this.options = options;
    this.emit = emit;
    this.started = repo.context.now();
  }

  private phase(phase: CheckPhase, total?: number): void {
    this.throwIfAborted();
    this.emit(total === undefined ? { type: 'phase', phase } : { type: 'phase', phase, total });
  }

  private throwIfAborted(): void {
    throwIfAborted(this.options.signal, 'verify');
  }

  private report(f: Omit<Finding, 'severity'>, atRisk: readonly Id[] = []): Finding {
    const finding: Finding = { severity: isNote(f.kind) ? 'note' : 'error', ...f } as Finding;
    this.findings.push(finding);
    if (atRisk.length > 0) {
      this.risk.set(finding, [...atRisk]);
      for (const id of atRisk) this.atRisk.add(id);
    }
    if (finding.pack && !isNote(finding.kind) && !finding.blob && finding.kind !== 'missing-blob') this.packFindings.set(finding.pack, finding);
    if (finding.blob) this.blobFindings.add(`${finding.pack ?? ''}:${finding.blob}`);
    this.emit({ type: 'finding', finding });
    return finding;
  }

  async run(): Promise<CheckSummary> {
    // The worker threads start now, so that they are ready once the index is loaded; the data reading owns them
    // from then on, and closes them when it is done.
    const key = cryptoMaterial(this.repo).key;
    const pool = this.options.readData ? (this.options.pool?.start(key) ?? new VerifyPool(key, this.options.workers ?? defaultVerifyWorkers())) : undefined;
    try {
      return await this.check(pool);
    } finally {
      // Closed already when the data reading took it; otherwise (the check failed before, or read no data) here.
      await pool?.close();
      await this.options.pool?.close();
    }
  }

  private async check(pool: VerifyPool | undefined): Promise<CheckSummary> {
    const t0 = Date.now();
    await this.checkLocks();
    // Reading every pack starts before the index loads (packs begun before it is loaded are cut by their own
    // headers): otherwise the worker threads would wait out the index load. A subset is drawn from the indexed packs,
    // so it waits for the index.
    const early = pool && this.options.readData?.kind === 'all' ? await this.startEarlyData(pool) : undefined;
    let data: DataRun | undefined = early?.run;
    let snapshots: SnapshotRef[];
    try {
      this.phase('index');
      const index = await loadIndexTolerant(this.repo).catch((e: unknown) => {
        early?.indexFailed(e);
        throw e;
      });
      early?.indexLoaded(index);
      this.counts.indexFiles = index.files.length;
      this.counts.indexedPacks = index.packs.size;
      for (const u of index.unreadable) {
        this.report({
          kind: 'unreadable-index', file: `index/${u.id}`, index: u.id,
          message: `index file ${shortId(u.id)} is damaged (${u.message}): the packs it lists look unindexed and their blobs missing. Run \`bam repair index\` to rebuild the index from the pack headers`,
        });
      }
      // Listed after the index is loaded: a pack that a concurrent backup adds with its index is then listed too.
      const packFiles = await this.listPacks();
      const present = this.checkPackPresence(index, packFiles);
      await this.readOrphanHeaders(index, packFiles);
      const selected = this.options.readData ? selectPacks(present, this.options.readData, this.options.random) : [];
      const readIds = new Set(selected.map((p) => p.id));
      // The data is read and verified by the workers while this thread checks the structure; its outcomes are judged
      // afterwards, in the order and with the deduplication of a data check that runs after the structure check.
      if (early) early.select(selected);
      else if (pool) data = this.startData(pool, index, selected);
      await this.checkHeaders(index, present.filter((p) => !readIds.has(p.id)));
      snapshots = await this.loadSnapshots();
      await this.walkTrees(snapshots);
      // The windows of tree packs the walk read would stay beside the data in flight until the end.
      this.repo.dropTreeCaches();
      this.reportRecoverable();
    } catch (e) {
      // Packs read before the index loaded wait for it: a check that ends without it ends their wait too.
      early?.indexFailed(e);
      data?.reading.stop();
      await data?.reading.done.catch(() => {});
      throw e;
    }
    if (data) await this.finishData(data);
    await this.attachImpact(snapshots);
    return this.summary(snapshots, Date.now() - t0);
  }

  // ---- locks -------------------------------------------------------------------------------------------------

  private async checkLocks(): Promise<void> {
    this.phase('locks');
    for (const l of await listLocks(this.repo)) {
      if (!l.stale) continue;
      const who = l.doc ? `${l.doc.operation} of ${l.doc.username}@${l.doc.hostname} (pid ${l.doc.pid}) since ${l.doc.time}` : 'an unreadable lock file';
      this.report({
        kind: 'stale-lock', file: `locks/${l.id}`, lock: l.id,
        message: `lock ${shortId(l.id)} is stale (${l.reason}): ${who}. It blocks nothing that runs on this host; remove it with \`bam unlock\``,
      });
    }
  }

  // ---- packs -------------------------------------------------------------------------------------------------

  private async listPacks(): Promise<Map<Id, number>> {
    this.phase('packs');
    const packs = new Map<Id, number>();
    for await (const f of this.repo.backend.list('data')) packs.set(f.name, f.size);
    this.counts.packFiles = packs.size;
    return packs;
  }

  /** Reports indexed packs that are missing and pack files that no index lists; returns the indexed packs present. */
  private checkPackPresence(index: LoadedIndex, packFiles: Map<Id, number>): PackRef[] {
    const present: PackRef[] = [];
    for (const packId of [...index.packs.keys()].sort()) {
      const size = packFiles.get(packId);
      if (size !== undefined) {
        present.push({ id: packId, size });
        continue;
      }
      const blobs = index.blobsOf(packId);
      const trees = blobs.filter((b) => b.type === 'tree').length;
      this.report(
        {
          kind: 'missing-pack', file: dataFile(packId), pack: packId, blobsAtRisk: blobs.length,
          message: `pack ${shortId(packId)} is listed by the index but missing from data/: its ${plural(blobs.length, 'blob')}${trees > 0 ? ` (${trees} of them directory listings)` : ''} are lost. Copy the file back from a mirror if one has it (\`bam check-consistency\`); otherwise run \`bam repair index\`, then \`bam repair snapshots\``,
        },
        blobs.map((b) => b.id),
      );
    }
    for (const [packId, size] of [...packFiles].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
      if (index.packs.has(packId)) continue;
      this.report({
        kind: 'orphan-pack', file: dataFile(packId), pack: packId,
        message: `pack ${shortId(packId)} (${size} bytes) is in data/ but no index lists it: a leftover of an interrupted backup, or its index file was lost. \`bam repair index\` indexes it again; \`bam prune\` removes it when nothing uses it`,
      });
    }
    return present;
  }

  /**
   * Reads the headers of packs that no index lists, so that a blob missing from the index can be told apart as
   * recoverable (`repair index`), and so that the tree walk can go on through trees that are only in such packs.
   */
  private async readOrphanHeaders(index: LoadedIndex, packFiles: Map<Id, number>): Promise<void> {
    const orphans = [...packFiles].filter(([id]) => !index.packs.has(id));
    if (orphans.length === 0) return;
    const key = cryptoMaterial(this.repo).key;
    await mapLimit(orphans, 8, async ([id, size]) => {
      this.throwIfAborted();
      try {
        const blobs = await readPackHeader((offset, length) => this.repo.backend.load({ type: 'data', name: id }, offset, length), size, key, id);
        for (const entry of blobs) if (!this.orphanBlobs.has(entry.id)) this.orphanBlobs.set(entry.id, { pack: id, entry });
      } catch {
        // An orphan pack with a damaged header holds nothing anyone can recover; the orphan-pack note stands.
      }
    });
  }

  /**
   * A tree through the index or, when the index lost it, straight from the orphan pack that holds it. The walk,
   * which reads each tree once, passes `cache: false`: the repository's tree cache would only hold some 200,000
   * nodes in memory (tens of megabytes) beside the packs the data check has in flight.
   */
  private async loadTree(id: Id, cache = true): Promise<TreeDocument> {
    if (this.repo.index.has(id)) {
      if (cache) return this.repo.loadTree(id);
      // The plaintext is this walk's alone, and decodeTree copies what it keeps.
      const bytes = await this.repo.loadBlob('tree', id);
      try {
        return decodeTree(bytes, `tree ${id.slice(0, 12)}`);
      } finally {
        releaseBytes(bytes, true);
      }
    }
    const orphan = this.orphanBlobs.get(id);
    if (!orphan || orphan.entry.type !== 'tree') return this.repo.loadTree(id);
    const { entry, pack } = orphan;
    const envelope = await this.repo.backend.load({ type: 'data', name: pack }, entry.offset, entry.length);
    const what = `pack ${shortId(pack)} tree ${shortId(id)}`;
    return decodeTree(openBlob(cryptoMaterial(this.repo).key, 'tree', idToBytes(id), envelope, entry.rawLength, what), what);
  }

  private async checkHeaders(index: LoadedIndex, packs: PackRef[]): Promise<void> {
    this.phase('packs', packs.length);
    const key = cryptoMaterial(this.repo).key;
    let done = 0;
    await mapLimit(packs, 8, async (p) => {
      this.throwIfAborted();
      const blobs = index.blobsOf(p.id);
      try {
        const header = await readPackHeader((offset, length) => this.repo.backend.load({ type: 'data', name: p.id }, offset, length), p.size, key, p.id);
        this.compareWithHeader(p.id, blobs, header);
      } catch (e) {
        this.packReadFailed(p, blobs, e, 'header');
      }
      done++;
      this.emit({ type: 'progress', phase: 'packs', done, total: packs.length, bytesRead: 0 });
    });
  }

  /** A pack (or its header) could not be read: name the reason as precisely as the error allows. */
  private packReadFailed(p: PackRef, blobs: IndexBlobEntry[], e: unknown, what: 'header' | 'data'): void {
    this.throwIfAborted();
    const code = isBackupError(e) ? e.code : undefined;
    if (code === 'INTERRUPTED') throw e;
    const ids = blobs.map((b) => b.id);
    if (code === 'NOT_FOUND') {
      this.report(
        { kind: 'missing-pack', file: dataFile(p.id), pack: p.id, blobsAtRisk: blobs.length, message: `pack ${shortId(p.id)} disappeared while it was checked: its ${plural(blobs.length, 'blob')} are lost unless it comes back. Is another program deleting files?` },
        ids,
      );
    } else if (code === 'CORRUPT' || code === 'INVALID_RANGE' || code === undefined) {
      this.report(
        {
          kind: 'corrupt-pack-header', file: dataFile(p.id), pack: p.id, blobsAtRisk: blobs.length,
          message: `pack ${shortId(p.id)} (${p.size} bytes) has a damaged header (${errorText(e)}), so it cannot be re-indexed and its ${plural(blobs.length, 'blob')} are at risk. Run \`bam verify --read-data\` to see which blobs are still readable`,
        },
        ids,
      );
    } else {
      this.report(
        { kind: 'unreadable-pack', file: dataFile(p.id), pack: p.id, blobsAtRisk: blobs.length, message: `pack ${shortId(p.id)} cannot be read (${errorText(e)}): its ${what} could not be checked. Check the disk or the destination, then run \`bam verify\` again` },
        ids,
      );
    }
  }

  /** Reports the index entries of a pack that its authenticated header does not confirm. */
  private compareWithHeader(packId: Id, indexed: readonly IndexBlobEntry[], header: readonly IndexBlobEntry[]): void {
    this.reportMismatches(packId, headerMismatches(indexed, header));
  }

  private reportMismatches(packId: Id, wrong: readonly HeaderMismatch[]): void {
    if (wrong.length === 0) return;
    const first = wrong[0]!;
    this.report(
      {
        kind: 'index-mismatch', file: dataFile(packId), pack: packId, blobsAtRisk: wrong.length,
        message: `the index disagrees with the header of pack ${shortId(packId)} about ${plural(wrong.length, 'blob')} (e.g. ${first.entry.type} blob ${shortId(first.entry.id)}: ${first.why}), so reading them fails. Run \`bam repair index\` to rebuild the index from the pack headers`,
      },
      wrong.map((w) => w.entry.id),
    );
  }

  // ---- snapshots and trees -----------------------------------------------------------------------------------

  private async loadSnapshots(): Promise<SnapshotRef[]> {
    this.phase('snapshots');
    const ids = await this.repo.listIds('snapshots');
    const out = await mapLimit(ids, 8, async (id): Promise<SnapshotRef | undefined> => {
      this.throwIfAborted();
      try {
        return { id, snapshot: await this.repo.loadSnapshot(id) };
      } catch (e) {
        if (!isDamage(e)) throw e;
        this.report({
          kind: 'unreadable-snapshot', file: `snapshots/${id}`, snapshot: id,
          message: `snapshot ${shortId(id)} is damaged (${errorText(e)}): it cannot be restored, and which files it held is unknown. Other snapshots are not affected; remove this one with \`bam forget ${shortId(id)}\` once you have checked them`,
        });
        return undefined;
      }
    });
    const readable = out.filter((s): s is SnapshotRef => s !== undefined);
    readable.sort((a, b) => compareTime(a.snapshot.time, b.snapshot.time) || (a.id < b.id ? -1 : 1));
    this.counts.snapshots = ids.length;
    return readable;
  }

  /** Walks every distinct tree once: each must load, and every blob it references must be indexed. */
  private async walkTrees(snapshots: readonly SnapshotRef[]): Promise<void> {
    this.phase('trees');
    const visited = new Set<Id>();
    const stack: Id[] = snapshots.map((s) => s.snapshot.tree).reverse();
    const index = this.repo.index;
    let sliceStart = performance.now();
    while (stack.length > 0) {
      const treeId = stack.pop()!;
      if (visited.has(treeId)) continue;
      visited.add(treeId);
      this.throwIfAborted();
      // The data check's reads and its workers wait on this thread. Trees come from cached windows without a
      // return to the event loop, so the walk yields every few milliseconds: otherwise the workers sat idle for
      // most of the walk (about a second of each on the benchmark corpus).
      if (performance.now() - sliceStart > WALK_SLICE_MS) {
        await new Promise((resolve) => setImmediate(resolve));
        sliceStart = performance.now();
      }
      this.counts.trees++;
      if ((this.counts.trees & 255) === 0) this.emit({ type: 'progress', phase: 'trees', done: this.counts.trees, total: 0, bytesRead: 0 });
      const loc = index.lookup(treeId);
      if (!loc) {
        this.missingBlob('tree', treeId);
        // When an orphan pack holds it, walk on through it: the files below are named, and their blobs checked.
        if (!this.orphanBlobs.has(treeId)) continue;
      }
      let nodes: TreeNode[];
      try {
        nodes = (await this.loadTree(treeId, false)).nodes;
      } catch (e) {
        if (!isDamage(e)) throw e;
        if (!loc) continue;
        // A missing pack, a damaged header or a wrong index entry was reported already with this blob at risk.
        if (this.atRisk.has(treeId)) continue;
        this.report(
          {
            kind: 'corrupt-blob', file: dataFile(loc.packId), pack: loc.packId, blob: treeId, blobType: 'tree',
            message: `directory listing (tree blob ${shortId(treeId)}) in pack ${shortId(loc.packId)} cannot be read (${errorText(e)}): everything below the directories that use it is lost. Run \`bam repair snapshots\` to keep the rest of the affected snapshots`,
          },
          [treeId],
        );
        continue;
      }
      for (const node of nodes) {
        if (node.type === 'dir' && node.subtree) {
          if (!visited.has(node.subtree)) stack.push(node.subtree);
        } else if (node.type === 'file') {
          this.counts.files++;
          for (const c of node.content ?? []) if (!index.has(c)) this.missingBlob('data', c);
        }
      }
    }
  }

  private missingBlob(type: 'data' | 'tree', id: Id): void {
    if (this.missingReported.has(id)) return;
    this.missingReported.add(id);
    const orphan = this.orphanBlobs.get(id);
    if (orphan) {
      // Recoverable: reported once per orphan pack when the walk is done, not once per blob.
      let group = this.recoverable.get(orphan.pack);
      if (!group) this.recoverable.set(orphan.pack, (group = []));
      group.push(orphan.entry);
      return;
    }
    const what = type === 'tree' ? `directory listing (tree blob ${shortId(id)})` : `data blob ${shortId(id)}`;
    const loss = type === 'tree' ? 'everything below the directories that use it cannot be restored' : 'the files that use it cannot be restored';
    this.report({ kind: 'missing-blob', blob: id, blobType: type, message: `${what} is in no index and no pack: ${loss}. \`bam repair snapshots\` writes snapshots without what it lost` }, [id]);
  }

  /** One finding per orphan pack that holds blobs the snapshots need. */
  private reportRecoverable(): void {
    for (const [pack, entries] of [...this.recoverable].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
      const trees = entries.filter((e) => e.type === 'tree').length;
      this.report(
        {
          kind: 'missing-blob', pack, file: dataFile(pack), blobsAtRisk: entries.length, ...(entries.length === 1 ? { blob: entries[0]!.id, blobType: entries[0]!.type } : {}),
          message: `${plural(entries.length, 'blob')} the snapshots need${trees > 0 ? ` (${trees} of them directory listings)` : ''} ${entries.length === 1 ? 'is in no index, so restoring it fails' : 'are in no index, so restoring them fails'}; pack ${shortId(pack)}, which no index lists, holds ${entries.length === 1 ? 'it' : 'them'}: \`bam repair index\` brings ${entries.length === 1 ? 'it' : 'them'} back`,
        },
        entries.map((e) => e.id),
      );
    }
    this.recoverable.clear();
  }

  // ---- data --------------------------------------------------------------------------------------------------

  /** Starts reading the selected packs; their outcomes wait in `pending` until finishData judges them. */
  private startData(pool: VerifyPool, index: LoadedIndex, packs: PackRef[]): DataRun {
    const run: DataRun = { index, total: packs.length, started: Date.now(), pending: [], judging: false, done: 0, bytesDone: 0, reading: undefined as unknown as PackReading };
    run.reading = readPacks(this.repo, cryptoMaterial(this.repo).key, pool, packs, this.readOptions(() => index), (o) => this.arrived(run, o));
    return run;
  }

  /**
   * Starts reading every pack in data/ before the index is loaded. `indexLoaded` (or `indexFailed`) must follow, then
   * `select` with the packs the check reads: those it lists that are not selected (unindexed ones, or gone since) are
   * left unjudged, and the selected ones it did not list (added since) are read after the others.
   */
  private async startEarlyData(pool: VerifyPool): Promise<{ run: DataRun; indexLoaded(index: LoadedIndex): void; indexFailed(e: unknown): void; select(packs: readonly PackRef[]): void }> {
    const listed: PackRef[] = [];
    for await (const f of this.repo.backend.list('data')) listed.push({ id: f.name, size: f.size });
    listed.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    let ready!: () => void;
    let failed!: (e: unknown) => void;
    const indexReady = new Promise<void>((resolve, reject) => {
      ready = resolve;
      failed = reject;
    });
    // Rejected when the check fails anyway; the lanes that wait for it end with that error, handled by `done`.
    indexReady.catch(() => {});
    const run: DataRun = { index: undefined as unknown as LoadedIndex, total: 0, started: Date.now(), pending: [], judging: false, done: 0, bytesDone: 0, reading: undefined as unknown as PackReading };
    const options = { ...this.readOptions(() => run.index), indexReady, open: true, skip: (id: Id) => run.selected !== undefined && !run.selected.has(id) };
    run.reading = readPacks(this.repo, cryptoMaterial(this.repo).key, pool, listed, options, (o) => {
      if (run.selected && !run.selected.has(o.pack.id)) return;
      this.arrived(run, o);
    });
    return {
      run,
      indexLoaded: (index) => {
        run.index = index;
        ready();
      },
      indexFailed: (e) => failed(e),
      select: (packs) => {
        run.total = packs.length;
        run.selected = new Set(packs.map((p) => p.id));
        const early = new Set(listed.map((p) => p.id));
        // An outcome that came before the selection was known waits in `pending`; finishData drops the unselected.
        run.reading.add(packs.filter((p) => !early.has(p.id)));
        run.reading.seal();
      },
    };
  }

  private readOptions(index: () => LoadedIndex): ReadPacksOptions {
    return {
      concurrency: Math.max(1, this.options.concurrency ?? 4),
      blobsOf: (id: Id) => index().blobsOf(id),
      ...(this.options.signal ? { signal: this.options.signal } : {}),
    };
  }

  private arrived(run: DataRun, o: PackOutcome): void {
    // A verdict carries all that judging it needs; a pack that could not be read is judged with its blobs.
    if ('verdict' in o) run.index.forget(o.pack.id);
    if (run.judging) this.outcome(run, o);
    else run.pending.push(o);
  }

  private async finishData(run: DataRun): Promise<void> {
    try {
      this.phase('data', run.total);
      run.judging = true;
      for (const o of run.pending.splice(0)) if (!run.selected || run.selected.has(o.pack.id)) this.outcome(run, o);
      await run.reading.done;
    } finally {
      run.reading.stop();
      await run.reading.done.catch(() => {});
      this.dataMs = Date.now() - run.started;
    }
    this.packsRead.sort();
  }

  private outcome(run: DataRun, o: PackOutcome): void {
    if ('error' in o) {
      this.packReadFailed(o.pack, run.index.blobsOf(o.pack.id), o.error, 'data');
      return;
    }
    const v = o.verdict;
    this.counts.bytesRead += v.size;
    this.counts.packsRead++;
    this.packsRead.push(o.pack.id);
    this.counts.blobsRead += v.blobsChecked;
    this.judge(o.pack, v.blobsChecked, v);
    run.done++;
    run.bytesDone += v.size;
    this.emit({ type: 'progress', phase: 'data', done: run.done, total: run.total, bytesRead: run.bytesDone });
  }

  /** `indexed`: how many blobs the index places in the pack. */
  private judge(p: PackRef, indexed: number, v: PackVerdict): void {
    const before = this.findings.length;
    if (!v.header.ok) {
      if (!this.packFindings.has(p.id)) {
        this.report({
          kind: 'corrupt-pack-header', file: dataFile(p.id), pack: p.id, blobsAtRisk: v.bad.length,
          message: `pack ${shortId(p.id)} (${p.size} bytes) has a damaged header (${v.header.message}): it cannot be re-indexed. ${v.bad.length === 0 ? `All ${plural(indexed, 'blob')} the index places in it are still readable` : `${plural(v.bad.length, 'blob')} of ${indexed} are unreadable (reported below)`}`,
        });
      }
    } else {
      this.reportMismatches(p.id, v.header.mismatches);
    }
    for (const b of v.bad) {
      if (this.blobFindings.has(`${p.id}:${b.id}`)) continue;
      const what = b.type === 'tree' ? `directory listing (tree blob ${shortId(b.id)})` : `data blob ${shortId(b.id)}`;
      const detail = b.reason === 'outside-pack' ? `${b.message}: the pack is truncated` : b.reason === 'hash-mismatch' ? b.message : `it fails authentication or decoding: ${b.message}`;
      this.report(
        {
          kind: 'corrupt-blob', file: dataFile(p.id), pack: p.id, blob: b.id, blobType: b.type,
          message: `${what} in pack ${shortId(p.id)} at offset ${b.offset} is damaged (${detail}). Restore the pack from a mirror if one has a good copy (\`bam check-consistency\`); otherwise \`bam repair snapshots --read-data\` keeps the rest of the affected snapshots`,
        },
        [b.id],
      );
    }
    if (!v.hashMatches && this.findings.length === before) {
      this.report({
        kind: 'corrupt-pack-header', file: dataFile(p.id), pack: p.id, blobsAtRisk: 0,
        message: `pack ${shortId(p.id)}'s content does not match its name (SHA-256), although its header and every indexed blob authenticate: bytes outside the indexed blobs changed. Nothing is lost; copy the pack from a mirror if one has a good copy`,
      });
    }
  }

  // ---- impact and summary ------------------------------------------------------------------------------------

  private async attachImpact(snapshots: readonly SnapshotRef[]): Promise<void> {
    const damaged = this.atRisk;
    if (damaged.size === 0) return;
    this.phase('impact');
    let trees = 0;
    const impact = await mapImpact(this.repo, snapshots, damaged, {
      ...(this.options.signal ? { signal: this.options.signal } : {}),
      loadTree: (id) => this.loadTree(id),
      onTree: () => {
        trees++;
        if ((trees & 255) === 0) this.emit({ type: 'progress', phase: 'impact', done: trees, total: this.counts.trees, bytesRead: 0 });
      },
    });
    const byId = new Map<Id, SnapshotDocument>(snapshots.map((s) => [s.id, s.snapshot]));
    const order = new Map<Id, number>(snapshots.map((s, i) => [s.id, i]));
    const limit = this.options.maxPathsPerFinding ?? 50;
    for (const [finding, ids] of this.risk) {
      const perSnapshot = new Map<Id, Set<string>>();
      for (const id of ids) {
        for (const { snapshot, path } of impact.get(id) ?? []) {
          let set = perSnapshot.get(snapshot);
          if (!set) {
            set = new Set();
            perSnapshot.set(snapshot, set);
          }
          set.add(path);
        }
      }
      const affects: AffectedSnapshot[] = [...perSnapshot]
        .sort((a, b) => order.get(a[0])! - order.get(b[0])!)
        .map(([id, paths]) => {
          const s = byId.get(id)!;
          const sorted = [...paths].sort();
          return { snapshot: id, time: s.time, hostname: s.hostname, sources: s.paths, paths: sorted.slice(0, limit), morePaths: Math.max(0, sorted.length - limit) };
        });
      finding.affects = affects;
    }
  }

  private summary(snapshots: readonly SnapshotRef[], durationMs: number): CheckSummary {
    const byKind: Partial<Record<FindingKind, number>> = {};
    let errors = 0;
    let notes = 0;
    for (const f of this.findings) {
      byKind[f.kind] = (byKind[f.kind] ?? 0) + 1;
      if (f.severity === 'error') errors++;
      else notes++;
    }
    const newest = new Map<string, SnapshotRef>();
    for (const s of snapshots) newest.set(sourceKey(s.snapshot), s);
    const summary: CheckSummary = {
      repository: this.repo.location,
      repositoryId: this.repo.config.id,
      startedAt: this.started.toISOString(),
      durationMs,
      healthy: errors === 0,
      dataScope: describeSelection(this.options.readData),
      packsRead: this.packsRead,
      counts: this.counts,
      errors,
      notes,
      byKind,
      findings: this.findings,
      newestSnapshots: [...newest.values()].map((s) => s.id),
      throughputBytesPerSec: this.dataMs > 0 ? Math.round((this.counts.bytesRead * 1000) / this.dataMs) : 0,
    };
    this.emit({ type: 'summary', summary });
    return summary;
  }
}

/** The data check under way: the outcomes that arrived before the structure check ended wait to be judged. */
interface DataRun {
  reading: PackReading;
  index: LoadedIndex;
  total: number;
  started: number;
  pending: PackOutcome[];
  /** the packs whose outcomes are judged, when the reading started before they were known (all others are) */
  selected?: Set<Id>;
  judging: boolean;
  done: number;
  bytesDone: number;
}

/** What makes snapshots "the same source": host and the set of backed-up paths. */
export function sourceKey(s: Pick<SnapshotDocument, 'hostname' | 'paths'>): string {
  return `${s.hostname}\u0000${[...s.paths].sort().join('\u0000')}`;
}
