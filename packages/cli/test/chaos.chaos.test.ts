import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, '..', '..', '..');
const bin = join(here, '..', 'dist', 'bin.js');

// `wharf chaos --json` against a private NATS broker (the quickest to start): stdout is exactly one
// JSON object of the documented shape, and the exit code follows the checker's verdict.
it('wharf chaos --json prints only the report and exits by the verdict', async () => {
  const run = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [bin, 'chaos', '--broker', 'nats://127.0.0.1:4222', '--scenario', 'broker-pause', '--events', '300', '--json'],
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
  const report = JSON.parse(run.stdout) as { broker: string; scenarios: Record<string, unknown>[] };
  expect(report.broker).toBe('nats');
  expect(report.scenarios).toHaveLength(1);
  const [scenario] = report.scenarios;
  expect(Object.keys(scenario ?? {})).toEqual([
    'name',
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
  const failed =
    scenario?.lost !== 0 ||
    scenario?.stalled !== false ||
    scenario?.pendingAtDeadline !== 0 ||
    scenario?.unexpected !== 0 ||
    scenario?.duplicateEffects !== 0;
  expect(run.code).toBe(failed ? 1 : 0);
  expect(run.stderr).toContain('private nats broker');
}, 300_000);
