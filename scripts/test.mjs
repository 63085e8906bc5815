#!/usr/bin/env node
// The README's test command (`npx -y pnpm@10 test`): starts the Kafka broker the suites need,
// builds the packages the CLI tests spawn, runs every vitest project, and ends with one line
// totalling every suite: `N passed, N failed, N skipped`.
//
// Brokers: RabbitMQ and NATS are expected as services (see README). Kafka is started here from
// Maven Central jars (scripts/kafka.sh). Under CI (or WHARF_REQUIRE_BROKERS) a missing broker fails
// the run; elsewhere its suites are reported as skipped with the reason.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const required = ['CI', 'WHARF_REQUIRE_BROKERS'].some((name) => {
  const value = process.env[name];
  return value !== undefined && value !== '' && value !== '0' && value.toLowerCase() !== 'false';
});
const args = process.argv.slice(2);

function run(command, commandArgs, options = {}) {
  return spawnSync(command, commandArgs, { cwd: root, stdio: 'inherit', ...options });
}

function has(command) {
  return spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;
}

// Kafka, unless the caller points the suites at their own broker.
if (!process.env.WHARF_KAFKA_URL && process.env.WHARF_SKIP_KAFKA_START !== '1') {
  if (has('java') && has('mvn')) {
    const started = run('bash', [join(root, 'scripts', 'kafka.sh'), 'up']);
    if (started.status !== 0) {
      console.error('[wharf] [test] could not start Kafka (scripts/kafka.sh up failed)');
      if (required) process.exit(1);
    }
  } else {
    const reason =
      '[wharf] [test] Java 17+ and Maven are needed to start Kafka from its jars; Kafka suites will report skipped';
    console.error(required ? reason.replace('will report skipped', 'are required under CI') : reason);
    if (required) process.exit(1);
  }
}

const built = run('npx', ['turbo', 'run', 'build', '--output-logs=errors-only']);
if (built.status !== 0) {
  console.error('[wharf] [test] build failed');
  process.exit(built.status ?? 1);
}

mkdirSync(join(root, '.wharf'), { recursive: true });
const report = join(root, '.wharf', 'test-results.json');
const vitest = run(
  'npx',
  ['vitest', 'run', '--reporter=default', '--reporter=json', `--outputFile=${report}`, ...args],
  {
    env: { ...process.env, KAFKAJS_NO_PARTITIONER_WARNING: '1' },
  },
);

let passed = 0;
let failed = 0;
let skipped = 0;
try {
  const results = JSON.parse(readFileSync(report, 'utf8'));
  passed = results.numPassedTests;
  failed = results.numFailedTests;
  skipped = results.numPendingTests + results.numTodoTests;
  // A file that failed to load has no test results of its own; count it so it cannot pass silently.
  failed += results.testResults.filter((file) => file.status === 'failed' && file.assertionResults.length === 0).length;
} catch {
  failed = Math.max(failed, 1);
  console.error('[wharf] [test] vitest wrote no JSON report');
}
// Vitest fails a run on an unhandled error (an exception thrown from a timer, say) that no test owns;
// its JSON report then shows no failure. Count it, so the summary line never says "0 failed" on a red run.
if (failed === 0 && vitest.status !== 0) {
  failed = 1;
  console.error('[wharf] [test] vitest failed outside any test (unhandled error; see above): counted as 1 failed');
}
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed > 0 || vitest.status !== 0 ? 1 : 0);
