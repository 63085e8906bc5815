#!/usr/bin/env node
// The README's test command (`npx -y pnpm@10 test`): builds the packages (the CLI tests spawn them),
// gets the brokers the suites need, runs every vitest project, and ends with one line
// totalling every suite: `N passed, N failed, N skipped`.
//
// Brokers: containers through Testcontainers when a container runtime is reachable; otherwise
// RabbitMQ and NATS as services (see README) and Kafka from Maven Central jars (scripts/kafka.sh).
// Under CI (or WHARF_REQUIRE_BROKERS) a missing broker fails the run; elsewhere its suites are
// reported as skipped with the reason.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

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

const built = run('npx', ['turbo', 'run', 'build', '--output-logs=errors-only']);
if (built.status !== 0) {
  console.error('[wharf] [test] build failed');
  process.exit(built.status ?? 1);
}

// Brokers, through the test kit's startBroker (@wharf/testing): a container per broker when a
// container runtime (Docker, Podman) is reachable, its URL handed to the suites in WHARF_*_URL;
// otherwise the broker already running on its default port; otherwise, for Kafka, scripts/kafka.sh
// (Java 17+ and Maven). A URL already set in the environment is used as it is. Under CI (or
// WHARF_REQUIRE_BROKERS) a broker that cannot be had fails the run; elsewhere its suites report
// skipped with the reason. The private brokers of the fault tests are started by those tests
// (rabbitmq-server, nats-server, Java), not here.
const { startBroker } = await import(pathToFileURL(join(root, 'packages', 'testing', 'dist', 'index.js')).href);
const brokers = [
  { kind: 'rabbitmq', env: 'WHARF_RABBITMQ_URL' },
  { kind: 'nats', env: 'WHARF_NATS_URL' },
  { kind: 'kafka', env: 'WHARF_KAFKA_URL', skip: process.env.WHARF_SKIP_KAFKA_START === '1' },
];
const started = [];
for (const { kind, env, skip } of brokers) {
  if (process.env[env] || skip) continue;
  try {
    const broker = await startBroker(kind, {
      log: (line) => console.error(line),
      // Kafka from its jars needs Java and Maven: without them, say so instead of failing in the script.
      ...(kind === 'kafka' && !(has('java') && has('mvn')) ? { kafkaScript: false } : {}),
    });
    started.push(broker);
    if (broker.source === 'container') process.env[env] = broker.url;
    console.error(`[wharf] [test] ${kind}: ${broker.url.replace(/\/\/[^@/]*@/, '//')} (${broker.source})`);
  } catch (error) {
    console.error(`[wharf] [test] no ${kind} broker: ${error.message}`);
    if (required) {
      // No suite ran; the run still ends with its total line, which names why it failed.
      for (const broker of started) await broker.stop().catch(() => undefined);
      console.log(`\nFailed (1):\n  ✗ no ${kind} broker (CI / WHARF_REQUIRE_BROKERS): ${firstLine(error.message)}`);
      console.log('0 passed, 1 failed, 0 skipped');
      process.exit(1);
    }
  }
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
  const failures = [];
  try {
    const results = JSON.parse(readFileSync(report, 'utf8'));
    counts.passed = results.numPassedTests;
    counts.failed = results.numFailedTests;
    counts.skipped = results.numPendingTests + results.numTodoTests;
    // A file that failed to load has no test results of its own; count it so it cannot pass silently.
    counts.failed += results.testResults.filter(
      (file) => file.status === 'failed' && file.assertionResults.length === 0,
    ).length;
    for (const file of results.testResults) {
      const where = relative(root, file.name);
      if (file.status === 'failed' && file.assertionResults.length === 0) {
        failures.push(`${where}: ${firstLine(file.message)}`);
      }
      for (const test of file.assertionResults) {
        if (test.status === 'failed')
          failures.push(`${where} > ${test.fullName}: ${firstLine(test.failureMessages?.[0])}`);
      }
    }
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
  return { ...counts, failures, status: result.status };
}

/** A failure's first line, short enough for the summary that CI logs keep. */
function firstLine(message) {
  const line =
    String(message ?? '')
      .split('\n')
      .find((text) => text.trim() !== '') ?? '(no message)';
  return line.length > 300 ? `${line.slice(0, 300)}…` : line;
}

// The fault tests (project `chaos`) run after everything else, three files at a time: each starts its
// own private brokers on free ports (none stops a shared one) and most of their time is spent waiting
// out faults (the CPU was idle ~half the time with two), so two side by side took ~12 minutes against
// ~21 one after another. A private broker
// once exited during start-up when three ran at once: its port came from listen(0), an ephemeral
// port another connection could take before the broker bound it; private brokers now listen below
// the ephemeral range (freePort in @wharf/chaos). WHARF_CHAOS_WORKERS overrides the count.
const runs = [];
if (args.length > 0) {
  runs.push(vitestRun('selected', args));
} else {
  // Three files at a time here too: vitest's default on 2 cores is one, and most of these tests wait
  // on brokers and child processes. Every file uses names of its own on the shared brokers, and none
  // stops or pauses one (only the chaos project does, on private brokers). The main projects took
  // ~950 s with one worker and 555 s with two (727 tests, December 2026); with the suite grown to
  // ~940 tests, two took 700-850 s and CI passed its 30 minutes. WHARF_TEST_WORKERS overrides the count.
  runs.push(
    vitestRun('main', [
      '--project',
      'unit',
      '--project',
      'rabbitmq',
      '--project',
      'kafka',
      '--project',
      'nats',
      '--maxWorkers',
      process.env.WHARF_TEST_WORKERS ?? '3',
    ]),
  );
  runs.push(vitestRun('chaos', ['--project', 'chaos', '--maxWorkers', process.env.WHARF_CHAOS_WORKERS ?? '3']));
}
const passed = runs.reduce((sum, r) => sum + r.passed, 0);
const failed = runs.reduce((sum, r) => sum + r.failed, 0);
const skipped = runs.reduce((sum, r) => sum + r.skipped, 0);
for (const broker of started) await broker.stop().catch(() => undefined);
// The failures again, last, next to the total: a CI log is often read from its tail only.
const failures = runs.flatMap((r) => r.failures);
if (failures.length > 0) {
  console.log(`\nFailed (${failures.length}):`);
  for (const failure of failures) console.log(`  ✗ ${failure}`);
}
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed > 0 || runs.some((r) => r.status !== 0) ? 1 : 0);
