import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatDiagnostic, generate, type RuntimeContract, runCodegen } from '../src/index.js';
import { generatedDir, here, typecheck } from './helpers.js';

const fixture = (name: string) => join(here, 'fixtures/fidelity', name);

async function contractOf(outDir: string): Promise<RuntimeContract> {
  return ((await import(join(outDir, 'contract.ts'))) as { contract: RuntimeContract }).contract;
}

describe('JSON Schema patterns', () => {
  const outDir = join(generatedDir, 'fidelity-patterns');

  it('compiles with u where it can, without it where only that works, and drops (with file:line) what neither accepts', async () => {
    const result = await generate(fixture('patterns.asyncapi.yaml'), { outDir });
    const warnings = result.warnings.filter((w) => w.code === 'invalid-pattern').map(formatDiagnostic);
    expect(warnings).toEqual([
      expect.stringMatching(
        /patterns\.asyncapi\.yaml:48:\d+ warning \[invalid-pattern\] pattern "\^\(lux" is not a valid regular expression .* dropped .*\/properties\/unit\/pattern/,
      ),
      expect.stringMatching(
        /patterns\.asyncapi\.yaml:53:\d+ warning \[invalid-pattern\] pattern "\^\(bad" .*\/patternProperties\/\^\(bad/,
      ),
    ]);
    expect(result.exampleFailures).toEqual([]);
    expect(typecheck([join(outDir, 'index.ts')])).toEqual([]);

    const validate = (await contractOf(outDir)).messages.Reading?.payload;
    if (!validate) throw new Error('no payload validator');
    const ok = { at: '2024-01-31T12:30:00Z', sensor: 'lux-1', unit: 'lux' };
    expect(validate(ok)).toBe(true);
    // The ISO 8601 pattern (legacy mode: back-references, \b in a lookahead, \:) still constrains.
    expect(validate({ ...ok, at: '2024-01-31T24:00' })).toBe(true);
    expect(validate({ ...ok, at: '2024-13-01' })).toBe(false);
    expect(validate({ ...ok, at: 'yesterday' })).toBe(false);
    expect(validate.errors?.[0]).toMatchObject({ instancePath: '/at', keyword: 'pattern' });
    // \p{L} means a letter only under u: proof that u stays on where the pattern allows it.
    expect(validate({ ...ok, sensor: 'Ωmega-7' })).toBe(true);
    expect(validate({ ...ok, sensor: 'p{L}-7' })).toBe(false);
    // Only the invalid pattern is dropped: minLength on the same property still holds.
    expect(validate({ ...ok, unit: 'candela' })).toBe(true);
    expect(validate({ ...ok, unit: 'c' })).toBe(false);
    // patternProperties: the valid key pattern holds, the dropped one lets nothing through.
    expect(validate({ ...ok, labels: { 'x-site': 'north' } })).toBe(true);
    expect(validate({ ...ok, labels: { 'x-site': 3 } })).toBe(false);
    expect(validate({ ...ok, labels: { bad: 3 } })).toBe(false);
  });

  it('wharf codegen prints the dropped pattern as a warning and still succeeds', async () => {
    const err: string[] = [];
    const code = await runCodegen([fixture('patterns.asyncapi.yaml'), '--out', outDir], {
      out: () => {},
      err: (line) => err.push(line),
    });
    expect(code).toBe(0);
    expect(err.join('\n')).toMatch(/patterns\.asyncapi\.yaml:48:\d+ warning \[invalid-pattern\]/);
  });
});

describe('$ref inside a schema that declares its own $id', () => {
  it('resolves against the document, as @asyncapi/parser does, and the validator enforces the target', async () => {
    const outDir = join(generatedDir, 'fidelity-ids');
    const result = await generate(fixture('ids.asyncapi.yaml'), { outDir });
    // The parser ran (no skipValidation) and found nothing wrong; neither do we.
    expect(result.warnings).toEqual([]);
    expect(result.exampleFailures).toEqual([]);
    expect(result.files.find((f) => f.path.endsWith('types.ts'))?.content).toContain('albums: Album[];');
    expect(typecheck([join(outDir, 'index.ts')])).toEqual([]);
    const validate = (await contractOf(outDir)).messages.PlaylistSaved?.payload;
    if (!validate) throw new Error('no payload validator');
    expect(validate({ name: 'x', albums: [{ title: 'Blue', year: 1971 }] })).toBe(true);
    expect(validate({ name: 'x', albums: [{ title: 'Blue', year: 1800 }] })).toBe(false);
    expect(validate.errors?.[0]).toMatchObject({ instancePath: '/albums/0/year', keyword: 'minimum' });
    expect(validate({ name: 'x', albums: [{ title: 'Blue', year: 1971, label: 'Reprise' }] })).toBe(false);
  });
});
