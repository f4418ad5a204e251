/**
 * The door to the zod-based part of this package (validation.ts), which is loaded on first use only.
 */
export function configValidation(): Promise<typeof import('./validation.ts')> {
  return import('./validation.ts');
}
