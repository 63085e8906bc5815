import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

// The handler test both READMEs show is readme-example.test.ts, which vitest runs like any other test.
const example = readFileSync(fileURLToPath(new URL('readme-example.test.ts', import.meta.url)), 'utf8');
const block = (readme: string) =>
  /<!-- testing-example -->\s*```ts\n([\s\S]*?)```/.exec(
    readFileSync(fileURLToPath(new URL(readme, import.meta.url)), 'utf8'),
  )?.[1];

it('shows in both READMEs exactly the handler test that runs, in under 10 lines besides imports', () => {
  expect(block('../README.md')).toBe(example);
  expect(block('../../../README.md')).toBe(example);
  const lines = example.split('\n').filter((line) => line.trim() !== '' && !line.startsWith('import '));
  expect(lines.length).toBeLessThan(10);
});
