import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, '..', '..', '..');
const bin = join(here, '..', 'dist', 'bin.js');

// `wharf chaos --json` against a private NATS broker (the quickest to start): stdout is exactly one
// JSON object of the documented shape, and the exit code follows the checker's verdict. Two rounds:
// every run is reported, and the summary gives each scenario's median and max over them.
it('wharf chaos --json --repeat 2 prints only the report and exits by the verdict', async () => {
  const run = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [
        bin,
        'chaos',
        '--broker',
        'nats://127.0.0.1:4222',
        '--scenario',
        'broker-pause',
        '--events',
        '300',
        '--repeat',
        '2',
        '--json',
      ],
      { cwd: repo },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    child.once('error', reject);
    child.once('exit', (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
  const report = JSON.parse(run.stdout) as {
    broker: string;
    scenarios: Record<string, unknown>[];
    summary: Record<string, unknown>[];
  };
  expect(report.broker).toBe('nats');
  expect(report.scenarios).toHaveLength(2);
  expect(report.scenarios.map((s) => s.round)).toEqual([1, 2]);
  const [scenario] = report.scenarios;
  expect(Object.keys(scenario ?? {})).toEqual([
    'name',
    'round',
    'published',
    'confirmed',
    'consumed',
    'lost',
    'unexpected',
    'duplicates',
    'duplicateEffects',
    'recovered',
    'pendingAtDeadline',
    'stalled',
    'recoveryMs',
  ]);
  expect(scenario?.published).toBe(300);
  const recoveries = report.scenarios.map((s) => s.recoveryMs as number | null).filter((v) => v !== null);
  expect(report.summary).toEqual([
    expect.objectContaining({
      name: 'broker-pause',
      runs: 2,
      events: 300,
      recoveryMs: {
        median: recoveries.length > 0 ? Math.min(...recoveries) : null,
        max: recoveries.length > 0 ? Math.max(...recoveries) : null,
      },
    }),
  ]);
  const failed = report.scenarios.some(
    (s) =>
      s.lost !== 0 ||
      s.stalled !== false ||
      s.pendingAtDeadline !== 0 ||
      s.unexpected !== 0 ||
      s.duplicateEffects !== 0,
  );
  expect(run.code).toBe(failed ? 1 : 0);
  expect(run.stderr).toContain('private nats broker');
}, 300_000);
