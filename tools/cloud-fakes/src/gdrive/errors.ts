// Google Drive v3's JSON error envelope ({"error":{"errors":[…],"code","message"}}) and the specific errors
// the fake answers with, worded as Drive words them so code that classifies errors by `reason` can be tested.

export interface DriveErrorItem {
  domain: string;
  reason: string;
  message: string;
  locationType?: string;
  location?: string;
}

export interface DriveErrorReply {
  status: number;
  headers: Record<string, string>;
  body: { error: { errors: DriveErrorItem[]; code: number; message: string } };
}

export function driveError(status: number, item: DriveErrorItem, headers: Record<string, string> = {}): DriveErrorReply {
  return { status, headers, body: { error: { errors: [item], code: status, message: item.message } } };
}

export function missingCredentials(): DriveErrorReply {
  return driveError(
    401,
    { domain: 'global', reason: 'required', message: 'Login Required.', locationType: 'header', location: 'Authorization' },
    { 'www-authenticate': 'Bearer realm="https://accounts.google.com/"' },
  );
}

export function invalidCredentials(): DriveErrorReply {
  return driveError(
    401,
    { domain: 'global', reason: 'authError', message: 'Invalid Credentials', locationType: 'header', location: 'Authorization' },
    { 'www-authenticate': 'Bearer realm="https://accounts.google.com/", error="invalid_token"' },
  );
}

export function fileNotFound(fileId: string, location = 'fileId'): DriveErrorReply {
  return driveError(404, {
    domain: 'global',
    reason: 'notFound',
    message: `File not found: ${fileId}.`,
    locationType: 'parameter',
    location,
  });
}

export function invalidParameter(location: string, message = 'Invalid Value'): DriveErrorReply {
  return driveError(400, { domain: 'global', reason: 'invalid', message, locationType: 'parameter', location });
}

export function requiredParameter(location: string): DriveErrorReply {
  return driveError(400, {
    domain: 'global',
    reason: 'required',
    message: `The '${location}' parameter is required for this method.`,
    locationType: 'parameter',
    location,
  });
}

export function badRequest(message: string): DriveErrorReply {
  return driveError(400, { domain: 'global', reason: 'badRequest', message });
}

export function storageQuotaExceeded(): DriveErrorReply {
  return driveError(403, {
    domain: 'usageLimits',
    reason: 'storageQuotaExceeded',
    message: "The user's Drive storage quota has been exceeded.",
  });
}

/** The resumable session URI is unknown or has expired: the whole upload has to be restarted. */
export function uploadSessionNotFound(): DriveErrorReply {
  return driveError(404, {
    domain: 'global',
    reason: 'notFound',
    message: 'The upload session has expired or does not exist; restart the upload from the beginning.',
    locationType: 'parameter',
    location: 'upload_id',
  });
}

export function rangeNotSatisfiable(size: number): DriveErrorReply {
  return driveError(
    416,
    { domain: 'global', reason: 'requestedRangeNotSatisfiable', message: 'Request range not satisfiable' },
    { 'content-range': `bytes */${size}` },
  );
}

/** Drive's envelope for a bare status, used for injected 'status' faults (429, 5xx, 403 rate limit, …). */
export function errorForStatus(status: number, fallbackMessage: string): DriveErrorReply {
  switch (status) {
    case 401:
      return invalidCredentials();
    case 403:
      return driveError(403, { domain: 'usageLimits', reason: 'userRateLimitExceeded', message: 'User Rate Limit Exceeded' });
    case 404:
      return driveError(404, { domain: 'global', reason: 'notFound', message: 'Not Found' });
    case 429:
      return driveError(429, { domain: 'usageLimits', reason: 'rateLimitExceeded', message: 'Rate Limit Exceeded' });
    case 500:
    case 502:
    case 503:
    case 504:
      return driveError(status, { domain: 'global', reason: 'backendError', message: 'Backend Error' });
    default:
      return driveError(status, {
        domain: 'global',
        reason: status >= 500 ? 'backendError' : 'badRequest',
        message: fallbackMessage,
      });
  }
}
