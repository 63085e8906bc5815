/** Where commands write: stdout for results, stderr for progress, so `--json` output stays parseable. */
export interface Output {
  out(text: string): void;
  err(text: string): void;
}

export const stdio: Output = {
  out: (text) => process.stdout.write(text.endsWith('\n') ? text : `${text}\n`),
  err: (text) => process.stderr.write(text.endsWith('\n') ? text : `${text}\n`),
};

export function json(output: Output, value: unknown): void {
  output.out(JSON.stringify(value, null, 2));
}
