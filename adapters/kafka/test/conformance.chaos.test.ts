import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { runConformance } from '@wharf/conformance';
import { adapter, cleanupChannel, publishForeign, unavailable } from './helpers.js';

const script = fileURLToPath(new URL('../../../scripts/kafka.sh', import.meta.url));
const run = promisify(execFile);

/** Restarts the broker through the project script; whatever happens, it is started again. */
async function restartBroker(): Promise<void> {
  try {
    await run('bash', [script, 'restart'], { timeout: 180_000 });
  } finally {
    await run('bash', [script, 'up'], { timeout: 180_000 });
  }
}

runConformance({
  name: 'kafka (chaos)',
  create: () => adapter(),
  ...(unavailable !== undefined ? { unavailable } : {}),
  publishForeign,
  cleanup: cleanupChannel,
  restartBroker,
  only: ['broker-restart'],
});
