import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { RuntimeContract } from '../src/index.js';
import { CodegenError, type GenerateResult, generate } from '../src/index.js';
import { generatedDir, here, typecheck } from './helpers.js';

// The official AsyncAPI examples, vendored from the npm package @asyncapi/cli (assets/examples):
// 2.6 from 0.59.1, 3.0 from 1.5.2, 3.1 from 6.2.0; and the test fixtures that AsyncAPI's generator
// templates publish on npm (test/mocks, tests/mocks, tests/user_examples, flattened):
// @asyncapi/java-spring-cloud-stream-template 0.13.4 (Avro among them), @asyncapi/java-spring-template
// 1.6.0, @asyncapi/nodejs-template 3.0.4 — all Apache-2.0, see fixtures/corpus/LICENSE.
// Then Wharf's own documents for what real documents use: Avro payloads (JSON and binary on the
// wire, .avsc references), patterns valid only without the u flag, $refs under a schema's $id,
// request/reply (`reply` with a runtime reply address, a components/replies $ref, a fixed reply channel).
const corpus = join(here, 'fixtures/corpus');
const fidelity = join(here, 'fixtures/fidelity');
const documents = [
  ...readdirSync(corpus)
    .filter((d) => d.startsWith('asyncapi-') || d.startsWith('templates-'))
    .flatMap((dir) =>
      readdirSync(join(corpus, dir))
        .filter((f) => /\.ya?ml$/.test(f))
        .map((file) => ({ dir, file, path: join(corpus, dir, file) })),
    ),
  ...['patterns.asyncapi.yaml', 'ids.asyncapi.yaml', 'avro/users.asyncapi.yaml', 'reply.asyncapi.yaml'].map((file) => ({
    dir: 'wharf',
    file,
    path: join(fidelity, file),
  })),
  ...['avro-invalid.yaml', 'avro-binary-ambiguous.yaml', 'avro-binary-json-schema.yaml'].map((file) => ({
    dir: 'wharf-invalid',
    file,
    path: join(here, 'fixtures/bad', file),
  })),
];

/** Documents that cannot be generated, and why (checked: they fail with this diagnostic, at file:line). */
const EXPECTED_FAILURES: Record<string, RegExp> = {
  // Its Avro payloads are referenced by https URL: remote, and codegen is offline (vendor the .avsc files).
  'adeo-kafka-request-reply-asyncapi.yml':
    /:\d+:\d+ error \[remote-ref\] \$ref "https:\/\/www\.asyncapi\.com\/.*\.avsc" is remote/,
  // Invalid documents: a dangling $ref, and a schema whose `default` lacks its required properties.
  'user-examples-issue_156.yml':
    /issue_156\.yml:\d+:\d+ error \[invalid-ref\] \$ref "#\/components\/schemas\/lagGroupId" does not resolve/,
  'schemas-with-duplicate-$ids.yaml':
    /schemas-with-duplicate-\$ids\.yaml:\d+:\d+ error \[asyncapi2-schema-default\] "default" property must have required property/,
  // Wharf's invalid feature documents.
  'avro-invalid.yaml': /avro-invalid\.yaml:\d+:\d+ error \[avro-schema\] .*undefined type name: strnig/,
  'avro-binary-ambiguous.yaml': /avro-binary-ambiguous\.yaml:\d+:\d+ error \[avro-schema\] .*ambiguous/,
  'avro-binary-json-schema.yaml': /avro-binary-json-schema\.yaml:\d+:\d+ error \[unsupported-content-type\]/,
};

/** Documents whose own `examples` violate their schemas (reported, not our bug). */
const EXAMPLES_VIOLATING_THEIR_SCHEMA = new Set([
  'asyncapi-3.0/kraken-websocket-request-reply-message-filter-in-reply-asyncapi.yml',
  'asyncapi-3.0/kraken-websocket-request-reply-multiple-channels-asyncapi.yml',
  'asyncapi-3.1/kraken-websocket-request-reply-message-filter-in-reply-asyncapi.yml',
  'asyncapi-3.1/kraken-websocket-request-reply-multiple-channels-asyncapi.yml',
]);

describe('real AsyncAPI documents: the official examples (2.6, 3.0, 3.1), template fixtures, Wharf features', () => {
  const results = new Map<string, GenerateResult>();

  it('has 2.6, 3.0 and template documents, Avro among them', () => {
    expect(documents.filter((d) => d.dir === 'asyncapi-2.6').length).toBeGreaterThanOrEqual(15);
    expect(documents.filter((d) => d.dir === 'asyncapi-3.0').length).toBeGreaterThanOrEqual(15);
    expect(documents.filter((d) => d.dir.startsWith('templates-')).length).toBeGreaterThanOrEqual(25);
    const avro = documents.filter((d) => /application\/vnd\.apache\.avro/.test(readFileSync(d.path, 'utf8')));
    expect(avro.length).toBeGreaterThanOrEqual(5);
  });

  it.each(documents)('$dir/$file generates code or fails with a clear diagnostic', async ({ dir, file, path }) => {
    const outDir = join(generatedDir, 'corpus', dir, file.replace(/\.ya?ml$/, '').replace(/[^A-Za-z0-9._-]/g, '-'));
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
