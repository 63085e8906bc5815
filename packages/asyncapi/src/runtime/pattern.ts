/**
 * The regular-expression engine generated validators use for JSON Schema `pattern` and
 * `patternProperties`. JSON Schema patterns are ECMA-262 regular expressions; Ajv compiles them with
 * the `u` flag, which rejects much that plain ECMA-262 accepts (identity escapes such as `\:`,
 * some back-references and lookarounds that real documents use). This engine keeps `u` where the
 * pattern allows it (so `.` and classes see code points) and falls back to no flag where the
 * pattern is valid only that way. Codegen drops, with a warning, a pattern valid in neither mode,
 * so the fallback never throws at runtime.
 */
export interface PatternEngine {
  (pattern: string, flags: string): RegExp;
  /** The expression Ajv's standalone code uses to reach this engine (rewritten by codegen). */
  readonly code: string;
}

/** The specifier under which generated validators find {@link compilePattern} in `ajvRuntime`. */
export const PATTERN_MODULE = '@wharf/asyncapi/pattern';

function compile(pattern: string, flags: string): RegExp {
  try {
    return new RegExp(pattern, flags);
  } catch (error) {
    if (!flags.includes('u')) throw error;
    return new RegExp(pattern, flags.replace('u', ''));
  }
}

/** Compiles a schema pattern with `u` when valid that way, else without it; see {@link PatternEngine}. */
export const compilePattern: PatternEngine = Object.assign(compile, {
  code: `require(${JSON.stringify(PATTERN_MODULE)}).compilePattern`,
});

/** How a pattern compiles: `unicode` (with `u`), `legacy` (only without `u`) or `invalid` (neither). */
export function patternMode(pattern: string): { mode: 'unicode' | 'legacy' | 'invalid'; error?: string } {
  try {
    new RegExp(pattern, 'u');
    return { mode: 'unicode' };
  } catch {
    try {
      new RegExp(pattern);
      return { mode: 'legacy' };
    } catch (error) {
      return { mode: 'invalid', error: (error as Error).message };
    }
  }
}
