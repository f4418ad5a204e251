// Resumable-upload sessions (createUploadSession → PUT fragments to the uploadUrl): the rules Graph applies to each
// fragment — sequential, Content-Range consistent with the body and the session's total, non-final fragments a
// multiple of 320 KiB and every request under 60 MiB — and the session's lifetime.

import { randomBytes } from 'node:crypto';
import type { ConflictBehavior } from './drive-store.ts';
import { graphError } from './replies.ts';
import type { GraphReply } from './replies.ts';

/** Every fragment but the last must be a multiple of this (320 KiB). */
export const FRAGMENT_ALIGNMENT_BYTES = 320 * 1024;
/** Each fragment request must be smaller than this (60 MiB). */
export const MAX_FRAGMENT_BYTES = 60 * 1024 * 1024;

export interface UploadSession {
  readonly id: string;
  readonly parentId: string;
  readonly name: string;
  readonly conflictBehavior: ConflictBehavior;
  /** `item.fileSize` from createUploadSession, when the client declared it. */
  readonly declaredSize: number | undefined;
  /** The total from the first fragment's Content-Range; every later fragment must repeat it. */
  total: number | undefined;
  readonly chunks: Buffer[];
  received: number;
  expiresAt: Date;
  /** All bytes arrived but the commit failed (e.g. nameAlreadyExists); no more fragments are accepted. */
  awaitingCommit: boolean;
}

export interface ContentRange {
  first: number;
  last: number;
  total: number;
}

/** `bytes first-last/total`, or undefined when the header is absent or malformed. */
export function parseContentRange(header: string | undefined): ContentRange | undefined {
  if (header === undefined) return undefined;
  const match = /^bytes (\d+)-(\d+)\/(\d+)$/u.exec(header.trim());
  if (match === null) return undefined;
  const first = Number(match[1]);
  const last = Number(match[2]);
  const total = Number(match[3]);
  if (![first, last, total].every(Number.isSafeInteger) || last < first || last >= total) return undefined;
  return { first, last, total };
}

export type FragmentOutcome =
  | { kind: 'rejected'; reply: GraphReply }
  | { kind: 'partial' }
  | { kind: 'complete'; content: Buffer };

/**
 * Applies one fragment PUT to the session, or says why Graph would refuse it. On 'complete' the caller commits the
 * file; the session keeps its bytes until then.
 */
export function applyFragment(
  session: UploadSession,
  contentRangeHeader: string | undefined,
  body: Buffer,
  errorContext: { now: Date; clientRequestId?: string },
): FragmentOutcome {
  const reject = (status: number, message: string, code?: string, innerCode?: string): FragmentOutcome => ({
    kind: 'rejected',
    reply: graphError(status, message, {
      ...(code === undefined ? {} : { code }),
      ...(innerCode === undefined ? {} : { innerCode }),
      ...errorContext,
    }),
  });
  if (session.awaitingCommit) {
    return reject(416, 'All bytes of this upload session were already received.', 'invalidRange', 'fragmentOverlap');
  }
  const range = parseContentRange(contentRangeHeader);
  if (range === undefined) {
    return reject(
      400,
      contentRangeHeader === undefined
        ? 'A Content-Range header (bytes first-last/total) is required when uploading to an upload session.'
        : `The Content-Range header "${contentRangeHeader}" is not of the form "bytes first-last/total".`,
      'invalidRequest',
      'invalidRange',
    );
  }
  const declaredLength = range.last - range.first + 1;
  if (declaredLength !== body.length) {
    return reject(
      400,
      `The Content-Range declares a fragment of ${declaredLength} bytes but the request carried ${body.length} bytes.`,
    );
  }
  if (body.length >= MAX_FRAGMENT_BYTES) {
    return reject(
      413,
      `A fragment must be smaller than 60 MiB (${MAX_FRAGMENT_BYTES} bytes); this one is ${body.length} bytes.`,
      'invalidRequest',
      'maxFragmentLengthExceeded',
    );
  }
  const expectedTotal = session.total ?? session.declaredSize;
  if (expectedTotal !== undefined && range.total !== expectedTotal) {
    return reject(
      400,
      `The upload session is for ${expectedTotal} total bytes, but this fragment declares a total of ${range.total}.`,
      'invalidRequest',
      'fragmentLengthMismatch',
    );
  }
  if (range.first < session.received) {
    return reject(416, 'The uploaded fragment overlaps bytes the session already has.', 'invalidRange', 'fragmentOverlap');
  }
  if (range.first > session.received) {
    return reject(
      416,
      `The uploaded fragment is out of order: the session expects byte ${session.received} next.`,
      'invalidRange',
      'fragmentOutOfOrder',
    );
  }
  const isFinal = range.last + 1 === range.total;
  if (!isFinal && body.length % FRAGMENT_ALIGNMENT_BYTES !== 0) {
    return reject(
      400,
      `Every fragment except the last must be a multiple of 320 KiB (${FRAGMENT_ALIGNMENT_BYTES} bytes); this one is ${body.length} bytes.`,
    );
  }
  session.total = range.total;
  session.chunks.push(body);
  session.received += body.length;
  if (!isFinal) return { kind: 'partial' };
  return { kind: 'complete', content: Buffer.concat(session.chunks) };
}

/** What GET on the uploadUrl (and a 202 fragment answer) reports. */
export function sessionStatus(session: UploadSession): { expirationDateTime: string; nextExpectedRanges: string[] } {
  const done = session.total !== undefined && session.received >= session.total;
  return {
    expirationDateTime: session.expiresAt.toISOString(),
    nextExpectedRanges: done ? [] : [`${session.received}-`],
  };
}

export class UploadSessions {
  readonly #sessions = new Map<string, UploadSession>();
  readonly #ttlMs: number;
  readonly #now: () => Date;

  constructor(options: { ttlSeconds: number; now: () => Date }) {
    this.#ttlMs = options.ttlSeconds * 1000;
    this.#now = options.now;
  }

  create(init: {
    parentId: string;
    name: string;
    conflictBehavior: ConflictBehavior;
    declaredSize: number | undefined;
  }): UploadSession {
    const session: UploadSession = {
      id: randomBytes(24).toString('base64url'),
      ...init,
      total: undefined,
      chunks: [],
      received: 0,
      expiresAt: new Date(this.#now().getTime() + this.#ttlMs),
      awaitingCommit: false,
    };
    this.#sessions.set(session.id, session);
    return session;
  }

  /** The open session, or undefined when it never existed, expired, was cancelled or completed. */
  get(id: string): UploadSession | undefined {
    const session = this.#sessions.get(id);
    if (session === undefined) return undefined;
    if (session.expiresAt.getTime() <= this.#now().getTime()) {
      this.#sessions.delete(id);
      return undefined;
    }
    return session;
  }

  /** Each accepted fragment pushes the expiry out again, as Graph does. */
  touch(session: UploadSession): void {
    session.expiresAt = new Date(this.#now().getTime() + this.#ttlMs);
  }

  delete(id: string): boolean {
    return this.#sessions.delete(id);
  }

  /** Ends every open session at once (the 'expire-upload-session' fault when it names no session). */
  deleteAll(): number {
    const count = this.#sessions.size;
    this.#sessions.clear();
    return count;
  }

  get size(): number {
    return this.#sessions.size;
  }
}
