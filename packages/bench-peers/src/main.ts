#!/usr/bin/env node
import { parseInvocation, usage } from './args.js';
import { comparePeer } from './compare.js';
import { formatComparison } from './report.js';

/** The runner: one peer against the bus and the raw client; `--json` prints one object on stdout. */
async function main(argv: readonly string[]): Promise<number> {
  const invocation = parseInvocation(argv);
  if (!invocation) {
    process.stdout.write(`${usage}\n`);
    return 0;
  }
  const { peer, options, json } = invocation;
  const progress = (line: string): void => {
    process.stderr.write(`${line}\n`);
  };
  const result = await comparePeer(peer, { ...options, progress });
  process.stdout.write(json ? `${JSON.stringify(result, null, 2)}\n` : `${formatComparison(result).join('\n')}\n`);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  },
);
