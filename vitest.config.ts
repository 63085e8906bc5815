import { defineConfig } from 'vitest/config';

// Tests run against TypeScript sources (the `wharf-source` export condition; vitest resolves through
// the SSR environment, so it must be set there too), so no build is needed
// between an edit and a test run. Broker suites are separate projects so one can be filtered with
// `--project`; tests that stop or restart a broker run alone, after everything else.
const resolve = { conditions: ['wharf-source', 'import', 'module', 'node', 'default'] };
const ssr = { resolve: { conditions: ['wharf-source', 'import', 'module', 'node', 'default'] } };
const shared = { testTimeout: 60_000, hookTimeout: 120_000 };

export default defineConfig({
  resolve,
  ssr,
  test: {
    reporters: ['default'],
    projects: [
      {
        resolve,
        ssr,
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
        ssr,
        test: {
          ...shared,
          name: broker,
          include: [`adapters/${broker}/test/**/*.test.ts`],
          exclude: ['**/*.chaos.test.ts', '**/node_modules/**'],
        },
      })),
      {
        resolve,
        ssr,
        test: {
          ...shared,
          name: 'chaos',
          include: ['**/test/**/*.chaos.test.ts'],
          exclude: ['**/node_modules/**'],
          fileParallelism: false,
          sequence: { groupOrder: 1 },
          testTimeout: 180_000,
        },
      },
    ],
  },
});
