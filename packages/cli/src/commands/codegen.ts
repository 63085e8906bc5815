import type { Output } from '../output.js';

export const codegenUsage = `wharf codegen <spec.yaml> --out <dir> [--check]

Generates TypeScript types, contract maps and precompiled validators from an AsyncAPI 3.0 or 2.6
document. --check exits 1 when the files in <dir> are stale.`;

interface CodegenModule {
  runCodegen(argv: string[], output?: Output): Promise<number>;
}

export async function codegen(argv: string[], output: Output): Promise<number> {
  // Loaded on demand: the AsyncAPI parser is heavy and only codegen needs it.
  const name = '@wharf/asyncapi';
  const mod = (await import(name)) as Partial<CodegenModule>;
  if (typeof mod.runCodegen !== 'function') {
    output.err('[wharf] [cli] this build of @wharf/asyncapi has no code generator');
    return 1;
  }
  return mod.runCodegen(argv, output);
}
