// Times one multi-process saga run: six service processes (two inventory replicas) sharing a state
// directory, and a coordinator that places the orders over HTTP. Deletes its channels afterwards.
// usage: node --conditions=wharf-source --import tsx examples/order-saga/scripts/bench-multiprocess.ts <url> <orders> [seed]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deleteNamespace, runSagaProcess, spawnFixture, testNamespace } from '../test/brokers.js';

const [url, orders = '2000', seed = '7'] = process.argv.slice(2);
const LAYOUT = ['order', 'inventory', 'inventory', 'payment', 'notification', 'audit'];
const stateDir = mkdtempSync(join(tmpdir(), 'wharf-saga-bench-'));
const namespace = testNamespace('bench');
const children = LAYOUT.map((service) =>
  spawnFixture('services.ts', [url!, service, stateDir], { WHARF_SAGA_NAMESPACE: namespace }),
);
try {
  await Promise.all(
    children.map(
      (child) =>
        new Promise<void>((resolve, reject) => {
          let out = '';
          child.stdout?.on('data', (chunk) => {
            out += chunk;
            if (out.includes('ready ')) resolve();
          });
          child.on('exit', (code) => reject(new Error(`a service process exited with ${code}`)));
        }),
    ),
  );
  const started = Date.now();
  const result = await runSagaProcess([url!, orders, seed, stateDir, ''], {
    WHARF_SAGA_NAMESPACE: namespace,
    WHARF_SAGA_TIMEOUT_MS: '600000',
  });
  const summary = result.summary;
  const failed = summary ? Object.entries(summary.invariants).filter(([, i]) => !i.ok) : [];
  console.log(
    JSON.stringify({
      url,
      orders: Number(orders),
      wallMs: Date.now() - started,
      durationMs: summary?.timings.durationMs,
      ordersPerSecond: summary?.timings.ordersPerSecond,
      ok: summary?.ok,
      failed,
      unavailable: result.unavailable,
    }),
  );
} finally {
  for (const child of children) if (child.exitCode === null) child.kill('SIGTERM');
  await Promise.all(
    children.map((child) => (child.exitCode === null ? new Promise((r) => child.on('exit', r)) : null)),
  );
  await deleteNamespace(url!, namespace);
  rmSync(stateDir, { recursive: true, force: true });
}
