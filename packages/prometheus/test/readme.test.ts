import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, '..', '..', '..');
const example = join(here, 'fixtures', 'readme-example.ts');

it('keeps the README example identical to the fixture, and it prints what the README says', () => {
  const readme = readFileSync(join(here, '..', 'README.md'), 'utf8');
  const block = /<!-- readme-example -->\s*```ts\n([\s\S]*?)```/.exec(readme)?.[1];
  expect(block).toBe(readFileSync(example, 'utf8'));
  const printed = /prints\s*```\n([\s\S]*?)```/.exec(readme)?.[1];
  const run = spawnSync(process.execPath, ['--conditions=wharf-source', '--import', 'tsx', example], {
    cwd: repo,
    encoding: 'utf8',
    env: { ...process.env, WHARF_BROKER: 'memory://' },
  });
  expect(run.stderr).toBe('');
  expect(run.stdout).toBe(printed);
});
