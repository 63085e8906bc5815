import { relative } from 'node:path';
import { CodegenError, formatDiagnostic } from '../errors.js';
import { generate } from './generate.js';

/** Where `runCodegen` prints; defaults to the process's streams. */
export interface CodegenIo {
  out(line: string): void;
  err(line: string): void;
}

const USAGE = 'usage: wharf codegen <spec.asyncapi.yaml> --out <dir> [--check] [--quiet]';

const processIo: CodegenIo = {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
};

/**
 * `wharf codegen <spec> --out <dir> [--check]`: generates (or, with `--check`, verifies) the
 * contract code of an AsyncAPI document. Prints diagnostics as `file:line:column error [code] message`
 * and resolves with the exit code: 0 done / up to date, 1 invalid document or stale output, 2 usage.
 */
export async function runCodegen(args: readonly string[], io: CodegenIo = processIo): Promise<number> {
  let spec: string | undefined;
  let outDir: string | undefined;
  let check = false;
  let quiet = false;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (arg === '--out' || arg === '-o') outDir = args[++i];
    else if (arg.startsWith('--out=')) outDir = arg.slice('--out='.length);
    else if (arg === '--check') check = true;
    else if (arg === '--quiet' || arg === '-q') quiet = true;
    else if (arg === '--help' || arg === '-h') {
      io.out(USAGE);
      return 0;
    } else if (arg.startsWith('-')) {
      io.err(`wharf codegen: unknown option ${arg}\n${USAGE}`);
      return 2;
    } else if (spec === undefined) spec = arg;
    else {
      io.err(`wharf codegen: one document at a time (got ${spec} and ${arg})\n${USAGE}`);
      return 2;
    }
  }
  if (!spec || !outDir) {
    io.err(`wharf codegen: ${!spec ? 'the document' : '--out <dir>'} is missing\n${USAGE}`);
    return 2;
  }
  try {
    const result = await generate(spec, { outDir, check });
    const shown = (p: string): string => relative(process.cwd(), p) || p;
    if (!quiet) for (const warning of result.warnings) io.err(formatDiagnostic(warning));
    for (const failure of result.exampleFailures) {
      io.err(
        `${spec} warning [example] example "${failure.example}" of message "${failure.message}" violates its ${failure.part} schema: ${failure.errors.join('; ')}`,
      );
    }
    if (check) {
      if (result.stale.length > 0) {
        for (const file of result.stale) io.err(`stale: ${shown(file)}`);
        io.err(
          `wharf codegen: the code in ${outDir} is out of date with ${spec} — run: wharf codegen ${spec} --out ${outDir}`,
        );
        return 1;
      }
      if (!quiet) io.out(`wharf codegen: ${outDir} is up to date with ${spec} (sha256 ${result.sha256.slice(0, 12)})`);
      return 0;
    }
    if (!quiet) {
      const m = result.model;
      io.out(
        `wharf codegen: ${spec} → ${outDir}: ${m.channels.length} channels, ${m.operations.length} operations, ${m.messages.length} messages; ` +
          `${result.written.length === 0 ? 'already up to date' : `wrote ${result.written.map(shown).join(', ')}`} (${Math.round(result.timings.totalMs)} ms)`,
      );
    }
    return 0;
  } catch (error) {
    if (error instanceof CodegenError) {
      for (const d of error.diagnostics) io.err(formatDiagnostic(d));
      io.err(`wharf codegen: ${error.message.split('\n')[0]?.replace(/^\[wharf\] \[asyncapi\] /, '')}`);
      return 1;
    }
    io.err(`wharf codegen: ${(error as Error).message}`);
    return 1;
  }
}
