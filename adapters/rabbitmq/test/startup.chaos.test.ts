import { strict as assert } from 'node:assert';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as amqp from 'amqplib';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { PrivateNode, privateNodeUnavailable } from './private-node.js';

// Issue 13, item 1: replicas of one service start together. Six processes declare and subscribe to
// the same five fresh channels at once, twenty rounds in a row, and publish at once: no declaration
// may fail (PRECONDITION_FAILED, a closed topology channel, a concurrent quorum-queue declare), no
// warning may be logged, and every event published reaches the group. Quorum queues are heavy (a
// 3.10 node was seen to wedge after hundreds were declared and deleted by six processes), so this
// runs against a node of its own, never the shared one.
const here = dirname(fileURLToPath(import.meta.url));
const PROCESSES = 6;
const CHANNELS = 5;
const ROUNDS = 20;

interface Child {
  readonly process: ChildProcess;
  readonly lines: string[];
  readonly waiters: { match: (line: string) => boolean; resolve: () => void }[];
}

function startChild(url: string, runId: string): Child {
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      '--conditions=wharf-source',
      join(here, 'fixtures', 'storm-child.ts'),
      url,
      runId,
      String(CHANNELS),
    ],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  const c: Child = { process: child, lines: [], waiters: [] };
  let buffer = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    buffer += chunk.toString();
    const lines = buffer.split('\n');
    buffer = lines.pop() ?? '';
    for (const line of lines) {
      c.lines.push(line);
      for (const w of c.waiters.splice(0)) {
        if (w.match(line)) w.resolve();
        else c.waiters.push(w);
      }
    }
  });
  return c;
}

function waitFor(c: Child, match: (line: string) => boolean, what: string, timeoutMs = 60_000): Promise<void> {
  if (c.lines.some(match)) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`timed out waiting for ${what}; child said:\n${c.lines.slice(-10).join('\n')}`)),
      timeoutMs,
    );
    c.waiters.push({
      match,
      resolve: () => {
        clearTimeout(timer);
        resolve();
      },
    });
  });
}

describe.skipIf(privateNodeUnavailable !== undefined)('rabbitmq start-up storm (private node)', () => {
  let node: PrivateNode;
  const children: Child[] = [];

  beforeAll(async () => {
    node = await PrivateNode.start('storm');
  }, 180_000);

  afterAll(async () => {
    for (const c of children) c.process.kill('SIGKILL');
    await node?.destroy();
  }, 120_000);

  it(`${PROCESSES} processes subscribe to the same ${CHANNELS} fresh channels at once, ${ROUNDS} rounds`, {
    timeout: 240_000,
  }, async () => {
    const runId = randomBytes(3).toString('hex');
    for (let i = 0; i < PROCESSES; i++) children.push(startChild(node.url, runId));
    await Promise.all(children.map((c) => waitFor(c, (l) => l === 'ready', 'a child to start')));
    // A failed declaration or subscription, or an error logged: a warning is a recovered reconnection.
    const failures = (): string[] =>
      children.flatMap((c) => c.lines.filter((l) => l.startsWith('fail ') || l.startsWith('log error ')));
    const admin = await amqp.connect(node.url);
    try {
      for (let round = 0; round < ROUNDS; round++) {
        const r = String(round);
        for (const c of children) c.process.stdin?.write(`go ${r}\n`);
        await Promise.all(
          children.map((c) =>
            waitFor(c, (l) => l === `published ${r}` || l.startsWith(`fail ${r} `), `round ${r} to publish`),
          ),
        );
        assert.deepEqual(failures(), [], `round ${r}: a replica failed`);
        // Each replica published one event per channel: the competing group gets all of them once.
        const deadline = Date.now() + 30_000;
        const got = (): number =>
          children.reduce((n, c) => n + c.lines.filter((l) => l.startsWith(`got ${r} `)).length, 0);
        while (got() < PROCESSES * CHANNELS && Date.now() < deadline) await new Promise((res) => setTimeout(res, 20));
        assert.equal(got(), PROCESSES * CHANNELS, `round ${r}: events received by the group`);
        for (const c of children) c.process.stdin?.write(`stop ${r}\n`);
        await Promise.all(children.map((c) => waitFor(c, (l) => l === `stopped ${r}`, `round ${r} to stop`)));
        // Delete what the round declared, retry tier and dead letters included.
        const ch = await admin.createChannel();
        for (let i = 0; i < CHANNELS; i++) {
          const base = `wharf.storm-${runId}-${r}-${i}`;
          for (const q of [`${base}/svc`, `${base}/svc/dlq`, `${base}/svc/retry.50`]) await ch.deleteQueue(q);
          await ch.deleteExchange(base);
        }
        await ch.close();
      }
      assert.deepEqual(failures(), []);
      // Recovered trouble (a connection the broker closed during a declare storm) is logged as a
      // warning and retried; show how often it happened.
      const warnings = children.flatMap((c) => c.lines.filter((l) => l.startsWith('log warn ')));
      process.stdout.write(
        `[storm] ${warnings.length} recovered warnings over ${ROUNDS} rounds\n${warnings.slice(0, 4).join('\n')}\n`,
      );
    } finally {
      for (const c of children) c.process.stdin?.write('exit\n');
      await admin.close().catch(() => undefined);
    }
  });
});
