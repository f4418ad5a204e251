/**
 * The CLI's documented exit codes (docs/cli.md) and the mapping from the engine's error codes to them.
 */
import type { ErrorCode } from '@backup-manager/core-archive';

export const EXIT = {
  ok: 0,
  error: 1,
  usage: 2,
  partial: 3,
  noRepository: 10,
  locked: 11,
  wrongPassword: 12,
  interrupted: 130,
} as const;

export function exitCodeFor(code: ErrorCode | 'USAGE'): number {
  switch (code) {
    case 'USAGE':
    case 'INVALID_ARGUMENT':
      return EXIT.usage;
    case 'REPOSITORY_NOT_FOUND':
      return EXIT.noRepository;
    case 'LOCKED':
      return EXIT.locked;
    case 'WRONG_PASSWORD':
      return EXIT.wrongPassword;
    case 'INTERRUPTED':
      return EXIT.interrupted;
    default:
      return EXIT.error;
  }
}
