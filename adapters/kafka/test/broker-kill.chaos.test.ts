import { strict as assert } from 'node:assert';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { conformanceHarness } from '../src/index.js';
import { PrivateBroker } from './private-broker.js';

const child = fileURLToPath(new URL('./fixtures/load-child.ts', import.meta.url));
const EVENTS = 2_000;

interface Service {
  readonly proc: ChildProcess;
  readonly output: () => string;
  readonly exited: Promise<number | null>;
  /** Resolves once the service printed a line matching `pattern`. */
  readonly printed: (pattern: RegExp) => Promise<void>;
}

function service(url: string, channel: string, group: string): Service {
  const proc = spawn(
    process.execPath,
    ['--conditions=wharf-source', '--import', 'tsx', child, url, channel, group, String(EVENTS)],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  const watchers: [RegExp, () => void][] = [];
  const onData = (chunk: Buffer): void => {
    out += chunk.toString();
    for (const [pattern, wake] of [...watchers]) if (pattern.test(out)) wake();
  };
  proc.stdout?.on('data', onData);
  proc.stderr?.on('data', onData);
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  return {
    proc,
    output: () => out,
    exited,
    printed: (pattern) =>
      new Promise<void>((resolve, reject) => {
        if (pattern.test(out)) return resolve();
        watchers.push([pattern, resolve]);
        void exited.then((code) => reject(new Error(`the service exited (${code}) before ${pattern}:\n${out}`)));
      }),
  };
}

/** Waits for the service's own verdict: every event handled and a clean exit, within `ms`. */
async function outcome(s: Service, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const code = await Promise.race([
    s.exited,
    new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), ms);
    }),
  ]);
  clearTimeout(timer);
  if (code === 'timeout') s.proc.kill('SIGKILL');
  const out = s.output();
  assert.ok(!out.includes('UNHANDLED'), `an error escaped to the process:\n${out.slice(-4_000)}`);
  assert.equal(code, 0, `the service did not finish (${code}):\n${out.slice(-4_000)}`);
  assert.match(out, /\bdone\b/);
}

/**
 * Issue 13, item 2: a broker `kill -9` mid-run and at start-up. The service must not crash (no
 * unhandled kafkajs error), must wait for the broker instead of giving up, must not hang, and must
 * handle every event it published. The broker is a private one on free ports, stopped at the end.
 */
describe('kafka: broker kill -9 (private broker)', () => {
  let broker: PrivateBroker;
  const services: Service[] = [];
  const channels: string[] = [];

  beforeAll(async () => {
    broker = await PrivateBroker.create();
    await broker.up();
  }, 180_000);

  afterAll(async () => {
    for (const s of services) s.proc.kill('SIGKILL');
    try {
      const harness = conformanceHarness(broker.url);
      for (const channel of channels) await harness.cleanup(channel, ['g']).catch(() => undefined);
    } finally {
      await broker.stop();
    }
  }, 180_000);

  it('a kill -9 mid-run: no crash, no hang, every event handled', { timeout: 240_000 }, async () => {
    const channel = `kc-mid-${randomBytes(4).toString('hex')}`;
    channels.push(channel);
    const s = service(broker.url, channel, 'g');
    services.push(s);
    await s.printed(/received [5-9]00\b/);
    await broker.kill9();
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    await broker.up();
    await outcome(s, 180_000);
  });

  it('a kill -9 before start-up: the service waits for the broker', { timeout: 240_000 }, async () => {
    const channel = `kc-start-${randomBytes(4).toString('hex')}`;
    channels.push(channel);
    await broker.kill9();
    const s = service(broker.url, channel, 'g');
    services.push(s);
    await new Promise((resolve) => setTimeout(resolve, 5_000));
    assert.equal(s.proc.exitCode, null, `the service gave up while the broker was down:\n${s.output()}`);
    await broker.up();
    await outcome(s, 180_000);
  });
});
