import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { createInterface, type Interface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { brokersRequired } from '@wharf/conformance';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanup, unavailable, unique, url } from './helpers.js';

// Issue 13, item 1: replicas of several services start together, so streams and consumers are created by
// several processes at once. Six processes declare and subscribe to the same five fresh channels (two groups
// each) at the same moment, 20 rounds, each round with new channels.

if (unavailable && brokersRequired()) throw new Error(`${unavailable} — CI requires NATS`);

const PROCESSES = 6;
const CHANNELS = 5;
const ROUNDS = 20;
/**
 * How long one answer (a round's declare + subscribe, or a close) may take. A round takes 0.1-0.6 s on a quiet
 * machine and up to a few seconds at load 50+; 30 s is far past any honest delay.
 */
const ANSWER_MS = 30_000;
/**
 * Start-up is not what this test is about: six processes loading TypeScript through tsx at once take 7-8 s of
 * wall time at load 11 (5.8 s of CPU between them, 1.2 s for one alone) and 17-40 s at load 45-55; under 30 s
 * they ran out the first answer's bound (the likely cause of a failure after 40 s in a full run). They get
 * their own bound to say "ready".
 */
const START_MS = 90_000;
const child = fileURLToPath(new URL('./fixtures/startup-child.ts', import.meta.url));
const root = fileURLToPath(new URL('../../..', import.meta.url));

interface Child {
  readonly process: ChildProcessWithoutNullStreams;
  readonly lines: Interface;
  next(timeoutMs?: number): Promise<string>;
}

function start(phase: () => string): Child {
  const proc = spawn(process.execPath, ['--import', 'tsx', '--conditions', 'wharf-source', child], {
    cwd: root,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const lines = createInterface({ input: proc.stdout });
  const queue: string[] = [];
  const waiting: ((line: string) => void)[] = [];
  lines.on('line', (line) => {
    const waiter = waiting.shift();
    if (waiter) waiter(line);
    else queue.push(line);
  });
  let stderr = '';
  proc.stderr.on('data', (chunk) => {
    stderr += String(chunk);
  });
  return {
    process: proc,
    lines,
    next: (timeoutMs = ANSWER_MS) => {
      const line = queue.shift();
      if (line !== undefined) return Promise.resolve(line);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () =>
            reject(new Error(`no answer from child ${proc.pid} in ${timeoutMs} ms (${phase()}); stderr: ${stderr}`)),
          timeoutMs,
        );
        waiting.push((answer) => {
          clearTimeout(timer);
          resolve(answer);
        });
      });
    },
  };
}

const children: Child[] = [];
const declared: string[] = [];
afterAll(async () => {
  for (const c of children) {
    c.process.stdin.write('exit\n');
    c.process.kill();
  }
  for (const channel of declared.splice(0)) await cleanup(channel, ['a', 'b']);
});

describe.skipIf(unavailable !== undefined)('nats adapter: start-up race', () => {
  it(`${PROCESSES} processes declare and subscribe to the same ${CHANNELS} fresh channels at once, ${ROUNDS} rounds`, async () => {
    let phase = 'start-up';
    const began = Date.now();
    for (let i = 0; i < PROCESSES; i++) children.push(start(() => phase));
    const ready = await Promise.all(children.map((c) => c.next(START_MS)));
    expect(ready).toEqual(children.map(() => 'ready'));
    const startMs = Date.now() - began;
    const roundMs: number[] = [];
    const failures: string[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      phase = `round ${round}, declare and subscribe`;
      const roundStart = Date.now();
      const channels = Array.from({ length: CHANNELS }, (_, n) => unique(`nats-race-${round}-${n}`));
      declared.push(...channels);
      for (const c of children) c.process.stdin.write(`round ${url} ${channels.join(' ')}\n`);
      const answers = await Promise.all(children.map((c) => c.next()));
      roundMs.push(Date.now() - roundStart);
      for (const answer of answers) if (answer !== 'ok') failures.push(`round ${round}: ${answer}`);
      phase = `round ${round}, close`;
      for (const c of children) c.process.stdin.write('close\n');
      await Promise.all(children.map((c) => c.next()));
      for (const channel of declared.splice(0)) await cleanup(channel, ['a', 'b']);
    }
    expect(failures).toEqual([]);
    process.stdout.write(
      `[wharf] nats start-up race: start-up ${startMs} ms, rounds ${Math.min(...roundMs)}-${Math.max(...roundMs)} ms\n`,
    );
  }, 240_000);
});
