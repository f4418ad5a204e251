/**
 * @backup-manager/retention-gfs: grandfather-father-son retention with restic's `forget` semantics, as a pure
 * function that explains every snapshot it keeps.
 */

export { applyPolicy, EMPTY_POLICY_NOTE, PROTECT_TAG } from './apply.ts';
export { describePolicy, isEmptyPolicy, type RetentionPolicy } from './policy.ts';
export { formatRetentionDuration, parseRetentionDuration, type RetentionDuration } from './duration.ts';
export { isRetentionPolicyError, RetentionPolicyError, type RetentionPolicyErrorOptions } from './errors.ts';
export {
  RULE_NAMES,
  type ApplyOptions,
  type GroupByField,
  type GroupKey,
  type GroupResult,
  type KeptSnapshot,
  type PolicyResult,
  type RetentionSnapshot,
  type RuleName,
} from './types.ts';
