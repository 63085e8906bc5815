import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CodegenError, generate, runCodegen } from '../src/index.js';
import { generatedDir, here } from './helpers.js';

const bad = (name: string) => join(here, 'fixtures/bad', name);

async function diagnose(name: string): Promise<{ code: number; err: string }> {
  const err: string[] = [];
  const code = await runCodegen([bad(name), '--out', join(generatedDir, 'bad')], {
    out: () => {},
    err: (l) => err.push(l),
  });
  return { code, err: err.join('\n') };
}

describe('bad input gives a clear diagnostic and a non-zero exit', () => {
  it('invalid YAML: file, line and the YAML error', async () => {
    const { code, err } = await diagnose('invalid-yaml.yaml');
    expect(code).toBe(1);
    expect(err).toMatch(/invalid-yaml\.yaml:\d+:\d+ error \[yaml\] invalid YAML/);
  });

  it('a document with errors: every parser diagnostic with file and line', async () => {
    const { code, err } = await diagnose('invalid-document.yaml');
    expect(code).toBe(1);
    expect(err).toMatch(/invalid-document\.yaml:2:\d+ error .*"version"/);
    expect(err).toMatch(/invalid-document\.yaml:9:\d+ error .*"send", "receive"/);
  });

  it('dangling $refs: names the reference, in this file and in a missing file', async () => {
    const { code, err } = await diagnose('dangling-ref.yaml');
    expect(code).toBe(1);
    expect(err).toMatch(
      /dangling-ref\.yaml:7:\d+ error \[invalid-ref\] \$ref "#\/components\/messages\/Missing" does not resolve/,
    );
    expect(err).toMatch(/\$ref "\.\/nowhere\.yaml#\/Thing" points to .*nowhere\.yaml, which cannot be read/);
  });

  it('remote $refs: cannot be resolved offline, named', async () => {
    const { code, err } = await diagnose('remote-ref.yaml');
    expect(code).toBe(1);
    expect(err).toMatch(/\[remote-ref\] \$ref "https:\/\/example\.com\/schemas\/thing\.json" is remote/);
  });

  it('a Protobuf payload: a clear unsupported-format message', async () => {
    const { code, err } = await diagnose('protobuf.yaml');
    expect(code).toBe(1);
    expect(err).toMatch(
      /protobuf\.yaml:10:\d+ error \[unsupported-schema-format\] message "UserSignedUp" uses schema format "application\/vnd\.google\.protobuf;version=3"/,
    );
  });

  it('not an AsyncAPI document', async () => {
    const error = await generate(bad('not-asyncapi.yaml'), { outDir: join(generatedDir, 'bad') }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(CodegenError);
    expect((error as CodegenError).diagnostics[0]?.code).toBe('asyncapi-version');
  });

  it('a missing file', async () => {
    const { code, err } = await diagnose('does-not-exist.yaml');
    expect(code).toBe(1);
    expect(err).toMatch(/cannot read .*does-not-exist\.yaml/);
  });
});
