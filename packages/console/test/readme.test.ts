import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readmeExample } from '@wharf/conformance';
import { expect, it } from 'vitest';

const here = dirname(fileURLToPath(import.meta.url));

it('keeps the README example identical to the fixture, and it prints what the README says', () => {
  const example = readmeExample(
    join(here, '..', 'README.md'),
    join(here, 'fixtures', 'readme-example.ts'),
    join(here, '..', '..', '..'),
  );
  expect(example.block).toBe(example.fixture);
  expect(example.stderr).toBe('');
  expect(example.stdout).toBe(example.printed);
});
