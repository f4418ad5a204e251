/**
 * The typed errors this package throws. It is a leaf library, so it does not use core-archive's BackupError; the
 * codes match BackupError's ('CONFIG_INVALID', 'INVALID_ARGUMENT', 'IO') so the CLI can map one onto the other.
 */

/** One problem in a config: where it is (`sources[0].priority`) and what is wrong and what to write instead. */
export interface ConfigIssue {
  /** Dotted path with array indices, e.g. `sources[0].priority`; `''` for the document as a whole. */
  path: string;
  message: string;
  /** 1-based position in the file, for JSON syntax errors only. */
  line?: number;
  column?: number;
}

export type ConfigErrorCode = 'CONFIG_INVALID' | 'IO';

export interface ConfigErrorOptions {
  cause?: unknown;
}

/** config.json could not be read, written or validated. `issues` lists every problem when the code is CONFIG_INVALID. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly code: ConfigErrorCode;
  readonly issues: readonly ConfigIssue[];
  /** The config file the error is about. */
  readonly path: string;

  constructor(
    code: ConfigErrorCode,
    message: string,
    path: string,
    issues: readonly ConfigIssue[] = [],
    options: ConfigErrorOptions = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.path = path;
    this.issues = issues;
  }
}

/** A duration, size or other value given as text (a flag, a config field) could not be understood. */
export class InvalidValueError extends Error {
  override readonly name = 'InvalidValueError';
  readonly code = 'INVALID_ARGUMENT';
}
