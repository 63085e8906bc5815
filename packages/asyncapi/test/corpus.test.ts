import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { RuntimeContract } from '../src/index.js';
import { CodegenError, type GenerateResult, generate } from '../src/index.js';
import { generatedDir, here, typecheck } from './helpers.js';

// The official AsyncAPI examples, vendored from the npm package @asyncapi/cli (assets/examples):
// 2.6 from 0.59.1, 3.0 from 1.5.2, 3.1 from 6.2.0 — Apache-2.0, see fixtures/corpus/LICENSE.
const corpus = join(here, 'fixtures/corpus');
const documents = readdirSync(corpus)
  .filter((d) => d.startsWith('asyncapi-'))
  .flatMap((dir) =>
    readdirSync(join(corpus, dir))
      .filter((f) => f.endsWith('.yml'))
      .map((file) => ({ dir, file, path: join(corpus, dir, file) })),
  );

/** Documents that cannot be generated offline, and why (checked: they fail with this diagnostic). */
const EXPECTED_FAILURES: Record<string, RegExp> = {
  // Its payloads are Avro schemas referenced by https URL: remote and not JSON Schema.
  'adeo-kafka-request-reply-asyncapi.yml': /\[remote-ref\] \$ref "https:\/\/www\.asyncapi\.com\/.*\.avsc" is remote/,
};

/** Documents whose own `examples` violate their schemas (reported, not our bug). */
const EXAMPLES_VIOLATING_THEIR_SCHEMA = new Set([
  'asyncapi-3.0/kraken-websocket-request-reply-message-filter-in-reply-asyncapi.yml',
  'asyncapi-3.0/kraken-websocket-request-reply-multiple-channels-asyncapi.yml',
  'asyncapi-3.1/kraken-websocket-request-reply-message-filter-in-reply-asyncapi.yml',
  'asyncapi-3.1/kraken-websocket-request-reply-multiple-channels-asyncapi.yml',
]);

describe('the official AsyncAPI examples (2.6, 3.0, 3.1)', () => {
  const results = new Map<string, GenerateResult>();

  it('has both 2.6 and 3.0 documents', () => {
    expect(documents.filter((d) => d.dir === 'asyncapi-2.6').length).toBeGreaterThanOrEqual(15);
    expect(documents.filter((d) => d.dir === 'asyncapi-3.0').length).toBeGreaterThanOrEqual(15);
  });

  it.each(documents)('$dir/$file generates code or fails with a clear diagnostic', async ({ dir, file, path }) => {
    const outDir = join(generatedDir, 'corpus', dir, file.replace(/\.yml$/, ''));
    const expected = EXPECTED_FAILURES[file];
    if (expected) {
      const error = await generate(path, { outDir }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(CodegenError);
      expect((error as CodegenError).message).toMatch(expected);
      return;
    }
    const result = await generate(path, { outDir });
    results.set(`${dir}/${file}`, result);
    const types = result.files.find((f) => f.path.endsWith('types.ts'))?.content ?? '';
    expect(types).not.toMatch(/anonymous/i);
    const violating = result.exampleFailures.length > 0;
    expect(violating, JSON.stringify(result.exampleFailures)).toBe(
      EXAMPLES_VIOLATING_THEIR_SCHEMA.has(`${dir}/${file}`),
    );
  });

  it('every generated contract compiles under tsc --strict', () => {
    const entries = [...results.values()].map((r) => r.files.find((f) => f.path.endsWith('index.ts'))?.path as string);
    expect(entries.length).toBe(documents.length - documents.filter((d) => EXPECTED_FAILURES[d.file]).length);
    expect(typecheck(entries)).toEqual([]);
  });

  it('every examples entry is checked by the generated validators, with the same verdict as codegen', async () => {
    let checked = 0;
    for (const [name, result] of results) {
      const contractFile = result.files.find((f) => f.path.endsWith('contract.ts'))?.path as string;
      const { contract } = (await import(contractFile)) as { contract: RuntimeContract };
      const failures: string[] = [];
      for (const message of result.model.messages) {
        const runtime = contract.messages[message.id];
        for (const example of message.examples) {
          for (const part of ['payload', 'headers'] as const) {
            const validate = runtime?.[part];
            const has = part === 'payload' ? example.hasPayload : example.hasHeaders;
            if (!validate || !has) continue;
            checked++;
            if (!validate(example[part])) failures.push(`${message.id}/${example.label}/${part}`);
          }
        }
      }
      const expected = result.exampleFailures.map((f) => `${f.message}/${f.example}/${f.part}`);
      expect(failures, name).toEqual(expected);
    }
    expect(checked).toBeGreaterThanOrEqual(10);
  });
});
