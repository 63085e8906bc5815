import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { quickstart } from '../src/index.js';

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, '..', '..', '..');

it('prints the retries, the success and the dead letter', async () => {
  const lines: string[] = [];
  await quickstart((line) => lines.push(line), 'memory://quickstart-test');
  expect(lines).toEqual([
    'attempt 1: hello world failed, the broker will retry',
    'attempt 1: poison can never be handled -> dead letter',
    'attempt 2: hello world failed, the broker will retry',
    'attempt 3: hello world!',
    'dead letters: Greeting (non-retryable: cannot greet poison)',
    'stats: 2 published, 1 acked, 2 retried, 1 dead-lettered',
  ]);
});

it('keeps the README usage example identical to the compiled one, and it runs', () => {
  const readme = readFileSync(join(repo, 'README.md'), 'utf8');
  const block = /<!-- readme-example -->\s*```ts\n([\s\S]*?)```/.exec(readme)?.[1];
  const source = readFileSync(join(here, '..', 'src', 'readme-example.ts'), 'utf8');
  expect(block).toBe(source);
  const run = spawnSync(process.execPath, [join(here, '..', 'dist', 'readme-example.js')], {
    cwd: repo,
    encoding: 'utf8',
    env: { ...process.env, WHARF_BROKER: 'memory://' },
  });
  expect(run.stderr).toBe('');
  expect(run.stdout).toBe('charging o-1 (attempt 1)\n');
});
