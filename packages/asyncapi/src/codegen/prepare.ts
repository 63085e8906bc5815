import type { Diagnostic } from '../errors.js';
import { patternMode } from '../runtime/pattern.js';
import { child, type Loc, type Workspace } from './load.js';

/** Keys whose values are data, not schemas: nothing under them is rewritten. */
const DATA_KEYS = new Set(['const', 'enum', 'default', 'examples', 'example']);

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/**
 * A copy of one source file as Ajv should see it, so that Ajv's verdict agrees with
 * `@asyncapi/parser`'s:
 * - `$id` keywords are removed. The parser resolves every `$ref` against the document it is in and
 *   ignores `$id`; Ajv would resolve `#/components/...` against the `$id` of the enclosing schema
 *   and fail. (A `$ref` to an `$id` URL is remote to both: `Workspace` refuses it.)
 * - a `pattern` (or `patternProperties` key) that is a regular expression neither with nor without
 *   the `u` flag is dropped, that constraint only, with a warning naming file and line.
 */
export function prepareForAjv(
  ws: Workspace,
  file: string,
  json: unknown,
): { json: unknown; warnings: Diagnostic[]; legacyPatterns: number } {
  const warnings: Diagnostic[] = [];
  let legacyPatterns = 0;
  const check = (pattern: string, loc: Loc): boolean => {
    const { mode, error } = patternMode(pattern);
    if (mode === 'legacy') legacyPatterns++;
    if (mode === 'invalid') warn(loc, pattern, error);
    return mode !== 'invalid';
  };
  const warn = (loc: Loc, pattern: string, error: string | undefined): void => {
    warnings.push({
      file: ws.display(loc.file),
      ...ws.position(loc),
      pointer: loc.pointer,
      severity: 'warning',
      code: 'invalid-pattern',
      message: `pattern ${JSON.stringify(pattern)} is not a valid regular expression with or without the u flag (${error ?? 'syntax error'}); this constraint is dropped from the validators`,
    });
  };
  const copy = (value: unknown, loc: Loc): unknown => {
    if (Array.isArray(value)) return value.map((item, i) => copy(item, child(loc, i)));
    if (!isRecord(value)) return value;
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) {
      const at = child(loc, key);
      if (DATA_KEYS.has(key)) out[key] = item;
      else if (key === '$id' && typeof item === 'string') continue;
      else if (key === 'pattern' && typeof item === 'string') {
        if (check(item, at)) out[key] = item;
      } else if (key === 'patternProperties' && isRecord(item)) {
        const kept: Record<string, unknown> = {};
        for (const [pattern, schema] of Object.entries(item)) {
          if (check(pattern, child(at, pattern))) kept[pattern] = copy(schema, child(at, pattern));
        }
        out[key] = kept;
      } else out[key] = copy(item, at);
    }
    return out;
  };
  return { json: copy(json, { file, pointer: '' }), warnings, legacyPatterns };
}
