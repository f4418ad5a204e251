/**
 * Renders the library's progress events: a redrawn status line on a terminal (files, bytes, rate, ETA), JSON lines
 * with --json, nothing with --quiet or when stderr is not a terminal.
 */
import type { BackupEvent, RestoreEvent } from '@backup-manager/core-archive';
import { formatBytes, formatDuration, formatRate } from './format.ts';
import type { Runtime } from './runtime.ts';

export class ProgressLine {
  private readonly rt: Runtime;
  private readonly started = Date.now();
  private lastDraw = 0;
  private drawn = false;
  private readonly tty: boolean;

  constructor(rt: Runtime) {
    this.rt = rt;
    this.tty = !rt.quiet && !rt.json && rt.streams.stderr.isTTY === true;
  }

  /** Draws at most five times a second; JSON lines at most once a second. */
  update(text: () => string, json: () => Record<string, unknown>, force = false): void {
    const now = Date.now();
    if (!force && now - this.lastDraw < (this.rt.json ? 1000 : 200)) return;
    this.lastDraw = now;
    if (this.rt.json) {
      this.rt.printJson({ type: 'progress', elapsedMs: now - this.started, ...json() });
      return;
    }
    if (!this.tty) return;
    const cols = this.rt.streams.stderr.columns ?? 100;
    this.rt.streams.stderr.write('\r\x1b[K' + text().slice(0, cols - 1));
    this.drawn = true;
  }

  elapsed(): number {
    return Date.now() - this.started;
  }

  clear(): void {
    if (this.drawn) this.rt.streams.stderr.write('\r\x1b[K');
    this.drawn = false;
  }
}

export function backupProgress(rt: Runtime): { onEvent: (e: BackupEvent) => void; line: ProgressLine } {
  const line = new ProgressLine(rt);
  let totalFiles: number | undefined;
  let totalBytes: number | undefined;
  const onEvent = (e: BackupEvent): void => {
    if (e.type === 'scan') {
      totalFiles = e.files;
      totalBytes = e.bytes;
      return;
    }
    if (e.type === 'warning') {
      line.clear();
      if (rt.json) rt.printJson({ type: 'warning', ...e.warning });
      else rt.streams.stderr.write(`warning: ${e.warning.message}\n`);
      return;
    }
    if (e.type !== 'progress') return;
    const ms = line.elapsed();
    line.update(
      () => {
        const parts = [`[${formatDuration(ms)}]`, `${e.filesDone}${totalFiles !== undefined ? `/${totalFiles}` : ''} files`,
          `${formatBytes(e.bytesDone)}${totalBytes !== undefined ? ` / ${formatBytes(totalBytes)}` : ''}`, formatRate(e.bytesRead, ms)];
        if (totalBytes !== undefined && e.bytesDone > 0 && totalBytes > e.bytesDone) {
          parts.push(`ETA ${formatDuration(((totalBytes - e.bytesDone) * ms) / e.bytesDone)}`);
        }
        return parts.join('  ');
      },
      () => ({ filesDone: e.filesDone, bytesDone: e.bytesDone, bytesRead: e.bytesRead, ...(totalFiles !== undefined ? { totalFiles, totalBytes } : {}) }),
    );
  };
  return { onEvent, line };
}

export function restoreProgress(rt: Runtime): { onEvent: (e: RestoreEvent) => void; line: ProgressLine } {
  const line = new ProgressLine(rt);
  const onEvent = (e: RestoreEvent): void => {
    if (e.type === 'problem') {
      line.clear();
      if (rt.json) rt.printJson({ type: 'problem', ...e.problem });
      else rt.streams.stderr.write(`problem: ${e.problem.message}\n`);
      return;
    }
    if (e.type !== 'progress') return;
    const ms = line.elapsed();
    line.update(
      () => {
        const pct = e.bytesTotal > 0 ? Math.floor((100 * e.bytesDone) / e.bytesTotal) : 100;
        const eta = e.bytesDone > 0 && e.bytesTotal > e.bytesDone ? `  ETA ${formatDuration(((e.bytesTotal - e.bytesDone) * ms) / e.bytesDone)}` : '';
        return `[${formatDuration(ms)}] ${pct}%  ${formatBytes(e.bytesDone)} / ${formatBytes(e.bytesTotal)}  ${formatRate(e.bytesDone, ms)}${eta}`;
      },
      () => ({ bytesDone: e.bytesDone, bytesTotal: e.bytesTotal, filesTotal: e.filesTotal }),
    );
  };
  return { onEvent, line };
}
