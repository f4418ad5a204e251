// Parses the Graph URL forms a OneDrive client uses to name a drive item — `/me/drive/root`, `/me/drive/items/{id}`,
// path mode `/me/drive/root:/a/b:` (optionally followed by `/children`, `/content`, …) and the `/drives/{id}` and
// `/drive` spellings — into a base item, decoded path segments and an action.

export type ItemAction = '' | 'children' | 'content' | 'createUploadSession' | 'permanentDelete';

const ACTIONS: readonly ItemAction[] = ['children', 'content', 'createUploadSession', 'permanentDelete'];

export type GraphRoute =
  | { kind: 'drive'; driveId: string | undefined }
  | {
      kind: 'item';
      driveId: string | undefined;
      /** 'root' or an item id (decoded). */
      base: { root: true } | { root: false; id: string };
      /** Decoded path segments after the base (path mode); empty when the base itself is meant. */
      segments: string[];
      action: ItemAction;
    }
  | { kind: 'invalid'; message: string };

/**
 * Parses the part of a Graph URL path after the version segment (e.g. "/me/drive/root:/a%20b:/children"), still
 * percent-encoded, as the SDK sends it.
 */
export function parseGraphRoute(rawPath: string): GraphRoute {
  const drive = /^\/(?:me\/drive|drive|drives\/([^/:]+))(?=$|\/)/u.exec(rawPath);
  if (drive === null) {
    const segment = rawPath.split('/')[1] ?? '';
    return { kind: 'invalid', message: `Resource not found for the segment '${segment}'.` };
  }
  let driveId: string | undefined;
  try {
    driveId = drive[1] === undefined ? undefined : decodeURIComponent(drive[1]);
  } catch {
    return { kind: 'invalid', message: 'The drive id is not correctly percent-encoded.' };
  }
  const rest = rawPath.slice(drive[0].length);
  if (rest === '' || rest === '/') return { kind: 'drive', driveId };

  let base: { root: true } | { root: false; id: string };
  let tail: string;
  if (rest.startsWith('/root') && /^\/root(?=$|[:/])/u.test(rest)) {
    base = { root: true };
    tail = rest.slice('/root'.length);
  } else {
    const item = /^\/items\/([^/:]+)/u.exec(rest);
    if (item === null) {
      const segment = rest.split('/')[1] ?? '';
      return { kind: 'invalid', message: `Resource not found for the segment '${segment}'.` };
    }
    try {
      base = { root: false, id: decodeURIComponent(item[1] ?? '') };
    } catch {
      return { kind: 'invalid', message: 'The item id is not correctly percent-encoded.' };
    }
    tail = rest.slice(item[0].length);
  }

  let segments: string[] = [];
  if (tail.startsWith(':')) {
    const close = tail.indexOf(':', 1);
    const rawItemPath = close === -1 ? tail.slice(1) : tail.slice(1, close);
    tail = close === -1 ? '' : tail.slice(close + 1);
    try {
      segments = rawItemPath
        .split('/')
        .filter((s) => s !== '')
        .map((s) => decodeURIComponent(s));
    } catch {
      return { kind: 'invalid', message: 'The item path is not correctly percent-encoded.' };
    }
  }
  if (tail === '' || tail === '/') return { kind: 'item', driveId, base, segments, action: '' };
  const action = ACTIONS.find((a) => tail === `/${a}`);
  if (action === undefined) {
    return { kind: 'invalid', message: `Resource not found for the segment '${tail.replace(/^\//u, '')}'.` };
  }
  return { kind: 'item', driveId, base, segments, action };
}
