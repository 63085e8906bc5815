import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseBrokerUrl, redactUrl } from '@wharf/core';
import { parse } from '../args.js';
import { brokerConnection, connectionFlags, connectionUsage } from '../connection.js';
import { json, type Output } from '../output.js';

export const conformanceUsage = `wharf conformance [--broker <url>] [connection flags] [--restart-command <shell command>] [--json]

Runs the cross-broker conformance suite against a broker through its adapter. The broker-restart
case runs only with --restart-command (a command that stops and starts the broker). Exit code 1 if
any case fails.

${connectionUsage}`;

interface VitestJson {
  numPassedTests: number;
  numFailedTests: number;
  numPendingTests: number;
  testResults: {
    assertionResults: { title: string; status: string; failureMessages: string[]; duration?: number }[];
  }[];
}

const here = dirname(fileURLToPath(import.meta.url));

export async function conformance(argv: string[], output: Output): Promise<number> {
  const { values } = parse(argv, {
    broker: { type: 'string' },
    'restart-command': { type: 'string' },
    json: { type: 'boolean' },
    ...connectionFlags,
  });
  const connection = brokerConnection(values.broker, values);
  const url = connection.url;
  parseBrokerUrl(url);
  const dir = mkdtempSync(join(tmpdir(), 'wharf-conformance-'));
  const report = join(dir, 'report.json');
  const vitest = join(dirname(createRequire(import.meta.url).resolve('vitest/package.json')), 'vitest.mjs');
  const root = join(here, '..', '..', 'conformance');
  const args = [vitest, 'run', '--root', root, '--reporter=json', `--outputFile=${report}`];
  if (!values.json) args.push('--reporter=default');
  const code = await new Promise<number>((resolve, reject) => {
    const child = spawn(process.execPath, args, {
      stdio: ['ignore', values.json ? 'ignore' : 'inherit', 'inherit'],
      env: {
        ...process.env,
        ...connection.env,
        WHARF_CONFORMANCE_URL: url,
        ...(values['restart-command'] ? { WHARF_CONFORMANCE_RESTART: values['restart-command'] } : {}),
      },
    });
    child.once('error', reject);
    child.once('exit', (exit) => resolve(exit ?? 1));
  });
  let parsed: VitestJson;
  try {
    parsed = JSON.parse(readFileSync(report, 'utf8')) as VitestJson;
  } catch {
    output.err(`[wharf] [cli] the conformance run produced no report (vitest exit code ${code})`);
    return 1;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const cases = parsed.testResults.flatMap((file) =>
    file.assertionResults.map((a) => {
      const [id, reason] = a.title.split(' — skipped: ');
      return {
        id: id ?? a.title,
        status: a.status === 'pending' || a.status === 'skipped' ? 'skipped' : a.status,
        ...(reason ? { reason } : {}),
        ...(a.failureMessages.length > 0 ? { failure: a.failureMessages[0]?.split('\n')[0] } : {}),
        ...(a.duration !== undefined ? { durationMs: Math.round(a.duration) } : {}),
      };
    }),
  );
  const summary = {
    broker: redactUrl(url),
    passed: cases.filter((c) => c.status === 'passed').length,
    failed: cases.filter((c) => c.status === 'failed').length,
    skipped: cases.filter((c) => c.status === 'skipped').map((c) => ({ id: c.id, reason: c.reason ?? '' })),
    cases,
  };
  if (values.json) json(output, summary);
  else
    output.out(
      `conformance on ${summary.broker}: ${summary.passed} passed, ${summary.failed} failed, ${summary.skipped.length} skipped`,
    );
  return summary.failed > 0 || code !== 0 ? 1 : 0;
}
