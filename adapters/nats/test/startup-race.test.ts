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
const child = fileURLToPath(new URL('./fixtures/startup-child.ts', import.meta.url));
const root = fileURLToPath(new URL('../../..', import.meta.url));

interface Child {
  readonly process: ChildProcessWithoutNullStreams;
  readonly lines: Interface;
  next(): Promise<string>;
}

function start(): Child {
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
    next: () => {
      const line = queue.shift();
      if (line !== undefined) return Promise.resolve(line);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no answer from child in 30 s; stderr: ${stderr}`)), 30_000);
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
    for (let i = 0; i < PROCESSES; i++) children.push(start());
    for (const c of children) expect(await c.next()).toBe('ready');
    const failures: string[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const channels = Array.from({ length: CHANNELS }, (_, n) => unique(`nats-race-${round}-${n}`));
      declared.push(...channels);
      for (const c of children) c.process.stdin.write(`round ${url} ${channels.join(' ')}\n`);
      const answers = await Promise.all(children.map((c) => c.next()));
      for (const answer of answers) if (answer !== 'ok') failures.push(`round ${round}: ${answer}`);
      for (const c of children) c.process.stdin.write('close\n');
      await Promise.all(children.map((c) => c.next()));
      for (const channel of declared.splice(0)) await cleanup(channel, ['a', 'b']);
    }
    expect(failures).toEqual([]);
  }, 120_000);
});
