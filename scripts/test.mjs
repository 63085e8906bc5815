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

/**
 * Runs vitest and reads its JSON report. Each run writes its own report, so the summary line can
 * total every suite.
 */
function vitestRun(name, vitestArgs) {
  const report = join(root, '.wharf', `test-results-${name}.json`);
  const result = run(
    'npx',
    ['vitest', 'run', '--reporter=default', '--reporter=json', `--outputFile=${report}`, ...vitestArgs],
    {
      env: { ...process.env, KAFKAJS_NO_PARTITIONER_WARNING: '1' },
    },
  );
  const counts = { passed: 0, failed: 0, skipped: 0 };
  try {
    const results = JSON.parse(readFileSync(report, 'utf8'));
    counts.passed = results.numPassedTests;
    counts.failed = results.numFailedTests;
    counts.skipped = results.numPendingTests + results.numTodoTests;
    // A file that failed to load has no test results of its own; count it so it cannot pass silently.
    counts.failed += results.testResults.filter(
      (file) => file.status === 'failed' && file.assertionResults.length === 0,
    ).length;
  } catch {
    counts.failed = Math.max(counts.failed, 1);
    console.error(`[wharf] [test] vitest (${name}) wrote no JSON report`);
  }
  // Vitest fails a run on an unhandled error (an exception thrown from a timer, say) that no test owns;
  // its JSON report then shows no failure. Count it, so the summary line never says "0 failed" on a red run.
  if (counts.failed === 0 && result.status !== 0) {
    counts.failed = 1;
    console.error(
      `[wharf] [test] vitest (${name}) failed outside any test (unhandled error; see above): counted as 1 failed`,
    );
  }
  return { ...counts, status: result.status };
}

// The fault tests (project `chaos`) run after everything else, two files at a time: each starts its
// own private brokers on free ports (none stops a shared one) and most of their time is spent waiting
// out faults, so two side by side take ~12 minutes against ~21 one after another. A private broker
// once exited during start-up when three ran at once: its port came from listen(0), an ephemeral
// port another connection could take before the broker bound it; private brokers now listen below
// the ephemeral range (freePort in @wharf/chaos). WHARF_CHAOS_WORKERS overrides the count.
const runs = [];
if (args.length > 0) {
  runs.push(vitestRun('selected', args));
} else {
  runs.push(
    vitestRun('main', ['--project', 'unit', '--project', 'rabbitmq', '--project', 'kafka', '--project', 'nats']),
  );
  runs.push(vitestRun('chaos', ['--project', 'chaos', '--maxWorkers', process.env.WHARF_CHAOS_WORKERS ?? '2']));
}
const passed = runs.reduce((sum, r) => sum + r.passed, 0);
const failed = runs.reduce((sum, r) => sum + r.failed, 0);
const skipped = runs.reduce((sum, r) => sum + r.skipped, 0);
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed > 0 || runs.some((r) => r.status !== 0) ? 1 : 0);
