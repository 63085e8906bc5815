import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: { include: ['entry.test.mjs'], testTimeout: 120_000, hookTimeout: 120_000 },
});
