import { strict as assert } from 'node:assert';
import { type ChildProcess, fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { brokersRequired } from '@wharf/conformance';
import { afterAll, describe, it } from 'vitest';
import { cleanupChannel, KAFKA_URL, skipKafka, unavailable } from './helpers.js';

const PROCESSES = 6;
const CHANNELS = 5;
const ROUNDS = 20;
/** Replicas of two services: each group has three members starting together. */
const groupOf = (i: number): string => `g${i % 2}`;

interface Reply {
  readonly round?: number;
  readonly ready?: boolean;
  readonly ok?: boolean;
  readonly error?: string;
  readonly closed?: number;
  readonly ms?: number;
}

/**
 * Issue 13, item 1: replicas started together declare and subscribe to topics that one of them
 * created a moment ago. Before the fix, a subscribe failed now and then with "This server does not
 * host this topic-partition" (the topic was listed, its partitions had no leader in metadata yet).
 */
describe.skipIf(skipKafka)('kafka start-up race: processes declaring and subscribing at once', () => {
  if (unavailable && brokersRequired()) {
    it('broker is reachable', () => {
      throw new Error(`${unavailable} — CI requires Kafka (bash scripts/kafka.sh up)`);
    });
    return;
  }
  const children: ChildProcess[] = [];
  const created: string[] = [];
  afterAll(async () => {
    for (const child of children) child.kill('SIGKILL');
    for (const channel of created) {
      await cleanupChannel(channel, [groupOf(0), groupOf(1)]).catch(() => undefined);
    }
  });

  it(`${PROCESSES} processes x ${CHANNELS} fresh channels, ${ROUNDS} rounds, never fail`, {
    timeout: 150_000,
  }, async () => {
    const child = fileURLToPath(new URL('./fixtures/startup-child.ts', import.meta.url));
    const replies = new Map<number, Reply[]>();
    const waiters: (() => void)[] = [];
    const readiness: Promise<void>[] = [];
    for (let i = 0; i < PROCESSES; i++) {
      const proc = fork(child, [], {
        execArgv: ['--conditions=wharf-source', '--import', 'tsx'],
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      });
      children.push(proc);
      readiness.push(
        new Promise((resolve, reject) => {
          proc.once('exit', (code) => reject(new Error(`child ${i} exited with ${code}`)));
          proc.on('message', (reply: Reply) => {
            if (reply.ready) return resolve();
            if (reply.closed !== undefined) {
              if (process.env.WHARF_STARTUP_TRACE) process.stderr.write(`closed ${reply.closed} in ${reply.ms} ms\n`);
              return;
            }
            if (process.env.WHARF_STARTUP_TRACE) process.stderr.write(`subscribed ${reply.round} in ${reply.ms} ms\n`);
            const list = replies.get(reply.round as number) ?? [];
            list.push(reply);
            replies.set(reply.round as number, list);
            for (const wake of waiters.splice(0)) wake();
          });
        }),
      );
    }
    await Promise.all(readiness);
    const failures: string[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const t0 = Date.now();
      const id = randomBytes(3).toString('hex');
      const channels = Array.from({ length: CHANNELS }, (_, c) => `kt-start-${id}-${c}`);
      created.push(...channels);
      children.forEach((proc, i) => {
        proc.send({ round, url: KAFKA_URL, channels, group: groupOf(i) });
      });
      while ((replies.get(round)?.length ?? 0) < PROCESSES) {
        await new Promise<void>((resolve) => waiters.push(resolve));
      }
      for (const reply of replies.get(round) ?? []) if (!reply.ok) failures.push(`round ${round}: ${reply.error}`);
      if (process.env.WHARF_STARTUP_TRACE)
        process.stderr.write(`round ${round} ${Date.now() - t0} ms ${failures.length} failures\n`);
    }
    assert.deepEqual(failures, [], `declare/subscribe failed:\n${failures.join('\n')}`);
  });
});
