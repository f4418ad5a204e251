// Parses the multipart/related bodies of Drive's uploadType=multipart requests (metadata part + media part).

export interface MultipartPart {
  /** Lower-cased header names. */
  headers: Record<string, string>;
  body: Buffer;
}

export class MultipartError extends Error {}

/** The boundary parameter of a multipart Content-Type, or undefined. */
export function multipartBoundary(contentType: string | undefined): string | undefined {
  if (contentType === undefined || !/^multipart\//i.test(contentType.trim())) return undefined;
  const match = /;\s*boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
  return match?.[1] ?? match?.[2];
}

export function parseMultipart(body: Buffer, boundary: string): MultipartPart[] {
  const delimiter = Buffer.from(`--${boundary}`);
  const nextDelimiter = Buffer.from(`\r\n--${boundary}`);
  let pos = body.indexOf(delimiter);
  if (pos < 0) throw new MultipartError('multipart body has no boundary');
  pos += delimiter.length;
  const parts: MultipartPart[] = [];
  for (;;) {
    if (body.subarray(pos, pos + 2).toString('latin1') === '--') return parts; // closing delimiter
    // The rest of the delimiter line (optional transport padding), then CRLF.
    const lineEnd = body.indexOf('\r\n', pos);
    if (lineEnd < 0) throw new MultipartError('multipart body ends inside a delimiter line');
    const start = lineEnd + 2;
    const end = body.indexOf(nextDelimiter, start);
    if (end < 0) throw new MultipartError('multipart body has no closing boundary');
    parts.push(parsePart(body.subarray(start, end)));
    pos = end + nextDelimiter.length;
  }
}

function parsePart(raw: Buffer): MultipartPart {
  if (raw.subarray(0, 2).toString('latin1') === '\r\n') return { headers: {}, body: raw.subarray(2) }; // no headers
  const split = raw.indexOf('\r\n\r\n');
  const headerText = split < 0 ? raw.toString('latin1') : raw.subarray(0, split).toString('latin1');
  const headers: Record<string, string> = {};
  for (const line of headerText.split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const body = split < 0 ? Buffer.alloc(0) : raw.subarray(split + 4);
  return { headers, body };
}
