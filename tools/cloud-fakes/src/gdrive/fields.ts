// Drive's partial-response `fields` parameter: parses selectors like `nextPageToken, files(id,name,size)`,
// rejects unknown field names as Drive does, and projects responses, so code that forgets a field fails in tests.

/** A parsed selection: each name maps to true (whole value) or to a nested selection. '*' selects everything. */
export type FieldSelection = Map<string, FieldSelection | true>;

/** Known names per level; a nested schema is given for values whose sub-fields are validated. */
export interface FieldSchema {
  readonly [name: string]: FieldSchema | null;
}

export class FieldsError extends Error {}

export function parseFields(text: string): FieldSelection {
  let pos = 0;
  const peek = (): string => text[pos] ?? '';
  const skipSpace = (): void => {
    while (/\s/.test(peek())) pos += 1;
  };
  const parseList = (): FieldSelection => {
    const selection: FieldSelection = new Map();
    for (;;) {
      skipSpace();
      const start = pos;
      while (/[A-Za-z0-9_*/.]/.test(peek())) pos += 1;
      const path = text.slice(start, pos);
      if (path === '') throw new FieldsError(`Invalid field selection at position ${start}`);
      skipSpace();
      let leaf: FieldSelection | true = true;
      if (peek() === '(') {
        pos += 1;
        leaf = parseList();
        skipSpace();
        if (peek() !== ')') throw new FieldsError(`Unclosed '(' in field selection`);
        pos += 1;
        skipSpace();
      }
      mergePath(selection, path.split('/'), leaf);
      if (peek() === ',') {
        pos += 1;
        continue;
      }
      return selection;
    }
  };
  const selection = parseList();
  skipSpace();
  if (pos !== text.length) throw new FieldsError(`Invalid field selection at position ${pos}`);
  return selection;
}

function mergePath(selection: FieldSelection, parts: string[], leaf: FieldSelection | true): void {
  const [head, ...rest] = parts;
  if (head === undefined || head === '') throw new FieldsError('Empty field name in selection');
  const existing = selection.get(head);
  if (rest.length === 0) {
    if (leaf === true || existing === true) selection.set(head, true);
    else if (existing === undefined) selection.set(head, leaf);
    else for (const [k, v] of leaf) mergePath(existing, [k], v);
    return;
  }
  if (existing === true) return;
  const child: FieldSelection = existing ?? new Map();
  selection.set(head, child);
  mergePath(child, rest, leaf);
}

/** Throws FieldsError naming the first selected field the schema does not know. */
export function validateFields(selection: FieldSelection, schema: FieldSchema): void {
  for (const [name, sub] of selection) {
    if (name === '*') continue;
    if (!Object.hasOwn(schema, name)) throw new FieldsError(`Invalid field selection ${name}`);
    const nested = schema[name];
    if (sub !== true && nested !== null && nested !== undefined) validateFields(sub, nested);
  }
}

/** Keeps only the selected fields; arrays are projected element by element. */
export function project(value: unknown, selection: FieldSelection | true): unknown {
  if (selection === true || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((item) => project(item, selection));
  const everything = selection.get('*');
  const out: Record<string, unknown> = {};
  for (const [name, v] of Object.entries(value)) {
    const sub = selection.get(name) ?? (everything === undefined ? undefined : true);
    if (sub !== undefined && v !== undefined) out[name] = project(v, sub);
  }
  return out;
}

const FILE_FIELD_NAMES = [
  'appProperties', 'capabilities', 'clientEncryptionDetails', 'contentHints', 'contentRestrictions',
  'copyRequiresWriterPermission', 'createdTime', 'description', 'downloadRestrictions', 'driveId',
  'explicitlyTrashed', 'exportLinks', 'fileExtension', 'folderColorRgb', 'fullFileExtension',
  'hasAugmentedPermissions', 'hasThumbnail', 'headRevisionId', 'iconLink', 'id', 'imageMediaMetadata',
  'inheritedPermissionsDisabled', 'isAppAuthorized', 'kind', 'labelInfo', 'lastModifyingUser', 'linkShareMetadata',
  'md5Checksum', 'mimeType', 'modifiedByMe', 'modifiedByMeTime', 'modifiedTime', 'name', 'originalFilename',
  'ownedByMe', 'owners', 'parents', 'permissionIds', 'permissions', 'properties', 'quotaBytesUsed', 'resourceKey',
  'sha1Checksum', 'sha256Checksum', 'shared', 'sharedWithMeTime', 'sharingUser', 'shortcutDetails', 'size',
  'spaces', 'starred', 'teamDriveId', 'thumbnailLink', 'thumbnailVersion', 'trashed', 'trashedTime',
  'trashingUser', 'version', 'videoMediaMetadata', 'viewedByMe', 'viewedByMeTime', 'viewersCanCopyContent',
  'webContentLink', 'webViewLink', 'writersCanShare',
] as const;

export const FILE_SCHEMA: FieldSchema = Object.fromEntries(FILE_FIELD_NAMES.map((n) => [n, null]));

export const FILE_LIST_SCHEMA: FieldSchema = {
  kind: null,
  nextPageToken: null,
  incompleteSearch: null,
  files: FILE_SCHEMA,
};

export const ABOUT_SCHEMA: FieldSchema = {
  appInstalled: null, canCreateDrives: null, canCreateTeamDrives: null, driveThemes: null, exportFormats: null,
  folderColorPalette: null, importFormats: null, kind: null, maxImportSizes: null, maxUploadSize: null,
  storageQuota: { limit: null, usage: null, usageInDrive: null, usageInDriveTrash: null },
  teamDriveThemes: null, user: null,
};

export const GENERATED_IDS_SCHEMA: FieldSchema = { kind: null, space: null, ids: null };

/** What Drive returns for a File when `fields` is omitted. */
export const DEFAULT_FILE_FIELDS = 'kind,id,name,mimeType';
/** What Drive returns for files.list when `fields` is omitted. */
export const DEFAULT_LIST_FIELDS = 'kind,nextPageToken,incompleteSearch,files(kind,id,name,mimeType)';
