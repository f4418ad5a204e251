// list_folder cursors: each answer hands out a new opaque cursor naming the listing's scope, the entries still to
// page through, and the change-log position from which list_folder/continue reports later changes.
import { randomBytes } from 'node:crypto';

export interface CursorState {
  scope: string;
  recursive: boolean;
  pageSize: number;
  /** Change-log sequence the listing reflects; later changes are reported once `pending` is exhausted. */
  baseSeq: number;
  pending: Record<string, unknown>[];
}

export interface ListPage {
  entries: Record<string, unknown>[];
  cursor: string;
  has_more: boolean;
}

export class ListCursors {
  private readonly states = new Map<string, CursorState>();

  /** Takes one page from `state` and mints the cursor for the rest. */
  page(state: CursorState): ListPage {
    const entries = state.pending.slice(0, state.pageSize);
    const rest = state.pending.slice(state.pageSize);
    const cursor = `AA${randomBytes(36).toString('base64url')}`;
    this.states.set(cursor, { ...state, pending: rest });
    return { entries, cursor, has_more: rest.length > 0 };
  }

  get(cursor: string): CursorState | undefined {
    return this.states.get(cursor);
  }

  /** Invalidates every cursor; list_folder/continue then answers `reset`. */
  clear(): void {
    this.states.clear();
  }
}
