import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

// Tests run against TypeScript sources, so no build is needed between an edit and a test run and a
// stale dist is never tested: every workspace package name is aliased to its src/index.ts. (An
// export condition would do the same, but in vitest's SSR environment it also changes how third-party
// packages resolve.) Broker suites are separate projects so one can be filtered with `--project`;
// fault tests (`*.chaos.test.ts`) run
// after everything else, side by side: each starts private brokers on free ports of its own.
const root = dirname(fileURLToPath(import.meta.url));
const workspace = ['packages', 'adapters', 'examples'].flatMap((dir) =>
  readdirSync(join(root, dir))
    .map((name) => join(root, dir, name))
    .filter((path) => existsSync(join(path, 'package.json')) && existsSync(join(path, 'src', 'index.ts'))),
);
// Subpath exports (`@wharf/testing/vitest`) go to the source their `wharf-source` condition names.
const subpaths = (path: string) => {
  const { name, exports } = JSON.parse(readFileSync(join(path, 'package.json'), 'utf8'));
  return Object.entries((exports ?? {}) as Record<string, { 'wharf-source'?: string }>)
    .filter(([key, target]) => key !== '.' && typeof target?.['wharf-source'] === 'string')
    .map(([key, target]) => ({
      find: new RegExp(`^${name}/${key.slice(2)}$`),
      replacement: join(path, target['wharf-source'] as string),
    }));
};
const resolve = {
  alias: workspace.flatMap((path) => [
    ...subpaths(path),
    {
      find: new RegExp(`^${JSON.parse(readFileSync(join(path, 'package.json'), 'utf8')).name}$`),
      replacement: join(path, 'src', 'index.ts'),
    },
  ]),
};
const shared = { testTimeout: 60_000, hookTimeout: 120_000 };

// Files go to the workers longest first (seconds per file from the last full run, written by
// scripts/test-durations.mjs). Vitest's own order groups files by project and, with no cache (a clean
// clone, as CI has), by size: the longest saga, compare and chaos files came last, and one worker
// ran alone for the last ~2 minutes of each run. A file not listed yet counts as a slow one.
const durations: Record<string, number> = JSON.parse(
  readFileSync(join(root, 'scripts', 'test-durations.json'), 'utf8'),
);
class LongestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const expected = (file: TestSpecification) => durations[relative(root, file.moduleId)] ?? 60;
    return [...files].sort(
      (a, b) =>
        (a.project.config.sequence.groupOrder ?? 0) - (b.project.config.sequence.groupOrder ?? 0) ||
        expected(b) - expected(a),
    );
  }
}

export default defineConfig({
  resolve,
  test: {
    reporters: ['default'],
    sequence: { sequencer: LongestFirst },
    projects: [
      {
        resolve,
        test: {
          ...shared,
          name: 'unit',
          include: [
            'packages/*/test/**/*.test.ts',
            'adapters/memory/test/**/*.test.ts',
            'examples/*/test/**/*.test.ts',
          ],
          exclude: ['**/*.chaos.test.ts', '**/node_modules/**'],
        },
      },
      ...['rabbitmq', 'kafka', 'nats'].map((broker) => ({
        resolve,
        test: {
          ...shared,
          name: broker,
          include: [`adapters/${broker}/test/**/*.test.ts`],
          exclude: ['**/*.chaos.test.ts', '**/node_modules/**'],
        },
      })),
      {
        resolve,
        test: {
          ...shared,
          name: 'chaos',
          include: ['**/test/**/*.chaos.test.ts'],
          exclude: ['**/node_modules/**'],
          sequence: { groupOrder: 1 },
          testTimeout: 180_000,
        },
      },
    ],
  },
});
