// Upload sessions (files/upload_session/*): sequential sessions whose offset must match the bytes received so far,
// concurrent sessions built from 4 MiB-aligned pieces, the 7-day lifetime, close/commit state, and the
// UploadSessionLookupError / UploadSessionFinishError values Dropbox returns when a call does not fit.
import { randomBytes } from 'node:crypto';
import type { Tagged } from './replies.ts';

export const SESSION_LIFETIME_MS = 7 * 24 * 60 * 60 * 1000;
export const CONCURRENT_BLOCK_BYTES = 4 * 1024 * 1024;
/** 2^41 - 2^22: the largest file an upload session can build. */
export const MAX_SESSION_BYTES = 2 ** 41 - 2 ** 22;

export interface UploadSession {
  id: string;
  createdAtMs: number;
  concurrent: boolean;
  /** Sequential sessions: received data in order. */
  chunks: Buffer[];
  /** Sequential sessions: bytes received; concurrent: sum of piece sizes. */
  size: number;
  /** Concurrent sessions: pieces by offset. */
  pieces: Map<number, Buffer>;
  /** Concurrent sessions: total length, known once the closing append arrived. */
  total: number | undefined;
  closed: boolean;
  committed: boolean;
}

export class UploadSessions {
  readonly sessions = new Map<string, UploadSession>();
  private readonly now: () => Date;

  constructor(now: () => Date) {
    this.now = now;
  }

  start(concurrent: boolean): UploadSession {
    const id = `pid_upload_session:${randomBytes(33).toString('base64url')}`;
    const session: UploadSession = {
      id,
      createdAtMs: this.now().getTime(),
      concurrent,
      chunks: [],
      size: 0,
      pieces: new Map(),
      total: undefined,
      closed: false,
      committed: false,
    };
    this.sessions.set(id, session);
    return session;
  }

  /** The live session, or undefined when unknown or older than 7 days (Dropbox then answers `not_found`). */
  lookup(id: string): UploadSession | undefined {
    const session = this.sessions.get(id);
    if (!session) return undefined;
    if (this.now().getTime() - session.createdAtMs >= SESSION_LIFETIME_MS) {
      this.sessions.delete(id);
      return undefined;
    }
    return session;
  }

  expire(id: string): void {
    this.sessions.delete(id);
  }
}

/**
 * upload_session/append_v2 (and the data carried by start): returns an UploadSessionLookupError-style tag when
 * the append is refused, undefined when the data was taken.
 */
export function appendToSession(session: UploadSession, offset: number, data: Buffer, close: boolean): Tagged | undefined {
  if (session.committed) return { '.tag': 'closed' };
  if (session.concurrent) {
    // Concurrent appends may complete in any order, so pieces before the closing one still fit after close.
    if (session.closed && (close || session.total === undefined || offset + data.byteLength > session.total)) {
      return { '.tag': 'closed' };
    }
    if (offset % CONCURRENT_BLOCK_BYTES !== 0) return { '.tag': 'concurrent_session_invalid_offset' };
    if (!close && data.byteLength % CONCURRENT_BLOCK_BYTES !== 0) {
      return { '.tag': 'concurrent_session_invalid_data_size' };
    }
    if (offset + data.byteLength > MAX_SESSION_BYTES) return { '.tag': 'too_large' };
    const replaced = session.pieces.get(offset)?.byteLength ?? 0;
    session.pieces.set(offset, data);
    session.size += data.byteLength - replaced;
    if (close) {
      session.closed = true;
      session.total = offset + data.byteLength;
    }
    return undefined;
  }
  if (session.closed) return { '.tag': 'closed' };
  if (offset !== session.size) return { '.tag': 'incorrect_offset', correct_offset: session.size };
  if (session.size + data.byteLength > MAX_SESSION_BYTES) return { '.tag': 'too_large' };
  if (data.byteLength > 0) session.chunks.push(data);
  session.size += data.byteLength;
  if (close) session.closed = true;
  return undefined;
}

/**
 * upload_session/finish before the commit: takes the call's data (sequential sessions only) and assembles the file.
 * Errors come back as complete UploadSessionFinishError values.
 */
export function assembleForFinish(session: UploadSession, offset: number, data: Buffer): { content: Buffer } | { error: Tagged } {
  const lookupFailed = (inner: Tagged): { error: Tagged } => ({ error: { '.tag': 'lookup_failed', lookup_failed: inner } });
  if (session.committed) return lookupFailed({ '.tag': 'closed' });
  if (session.concurrent) {
    if (data.byteLength > 0) return { error: { '.tag': 'concurrent_session_data_not_allowed' } };
    if (!session.closed || session.total === undefined) return { error: { '.tag': 'concurrent_session_not_closed' } };
    const ordered = [...session.pieces.entries()].sort((a, b) => a[0] - b[0]);
    let expected = 0;
    for (const [pieceOffset, piece] of ordered) {
      if (pieceOffset !== expected) return { error: { '.tag': 'concurrent_session_missing_data' } };
      expected += piece.byteLength;
    }
    if (expected !== session.total) return { error: { '.tag': 'concurrent_session_missing_data' } };
    if (offset !== session.total) return lookupFailed({ '.tag': 'incorrect_offset', correct_offset: session.total });
    return { content: Buffer.concat(ordered.map(([, piece]) => piece)) };
  }
  if (offset !== session.size) return lookupFailed({ '.tag': 'incorrect_offset', correct_offset: session.size });
  if (data.byteLength > 0) {
    if (session.closed) return lookupFailed({ '.tag': 'closed' });
    session.chunks.push(data);
    session.size += data.byteLength;
  }
  return { content: Buffer.concat(session.chunks) };
}
