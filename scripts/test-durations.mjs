#!/usr/bin/env node
// Writes scripts/test-durations.json from the JSON reports of the last full test run (.wharf/), as
// pytest-split's --store-durations does: each test file's wall time in seconds. vitest.config.ts
// hands files to its workers longest first from it, so a clean clone (which has no vitest cache)
// does not leave the longest files for last, with one worker busy and the other idle. Re-run after
// adding or reshaping slow tests: `node scripts/test-durations.mjs`.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const durations = {};
for (const name of ['main', 'chaos']) {
  const report = join(root, '.wharf', `test-results-${name}.json`);
  if (!existsSync(report)) throw new Error(`${relative(root, report)} is missing: run the whole test command first`);
  for (const file of JSON.parse(readFileSync(report, 'utf8')).testResults) {
    const path = relative(root, file.name);
    // A report written in another checkout names files outside this one: its keys would match no
    // file here, and every file would be scheduled as unknown (this happened once: CI took 27 min).
    if (path.startsWith('..'))
      throw new Error(`${file.name} is outside ${root}: use reports of a run in this checkout`);
    durations[path] = Math.max(1, Math.round((file.endTime - file.startTime) / 1000));
  }
}
const sorted = Object.fromEntries(Object.entries(durations).sort(([a], [b]) => (a < b ? -1 : 1)));
writeFileSync(join(root, 'scripts', 'test-durations.json'), `${JSON.stringify(sorted, null, 2)}\n`);
console.log(`scripts/test-durations.json: ${Object.keys(sorted).length} files`);
