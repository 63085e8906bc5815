import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import type { ForeignMessage } from '@wharf/conformance';
import { probeBroker } from '@wharf/conformance';
import * as amqp from 'amqplib';
import { conformanceHarness } from '../src/index.js';

const run = promisify(execFile);

export const host = process.env.WHARF_RABBITMQ_HOST ?? '127.0.0.1';
export const port = Number(process.env.WHARF_RABBITMQ_PORT ?? 5672);
export const url = process.env.WHARF_RABBITMQ_URL ?? `amqp://guest:guest@${host}:${port}`;
export const PREFIX = 'wharf';

/** Why the RabbitMQ suites cannot run here, or undefined when the broker answers. */
export const unavailable = await probeBroker('RabbitMQ', host, port);
if (unavailable) process.stdout.write(`[wharf] rabbitmq tests: ${unavailable}\n`);

/** A name no other test or run uses. */
export function unique(label: string): string {
  return `${label}-${randomBytes(4).toString('hex')}`;
}

/** Runs `work` on a plain amqplib channel of a fresh connection. */
export async function withChannel<T>(work: (ch: amqp.ConfirmChannel) => Promise<T>): Promise<T> {
  const connection = await amqp.connect(url, { noDelay: true });
  try {
    const ch = await connection.createConfirmChannel();
    ch.on('error', () => undefined);
    return await work(ch);
  } finally {
    await connection.close().catch(() => undefined);
  }
}

const harness = conformanceHarness(url, PREFIX);

/** Sends a message to the channel's exchange with the raw client, as a non-Wharf producer would. */
export const publishForeign: (channel: string, message: ForeignMessage) => Promise<void> = harness.publishForeign;

/** Deletes every queue this process declared for the channel, the groups' queues and the exchange. */
export const cleanup: (channel: string, groups: readonly string[]) => Promise<void> = harness.cleanup;

/** Stops and starts the real broker's application; always tries to leave it running. */
export async function restartBroker(downMs = 1_000): Promise<void> {
  try {
    await run('rabbitmqctl', ['stop_app'], { timeout: 60_000 });
    await new Promise((resolve) => setTimeout(resolve, downMs));
  } finally {
    await ensureBrokerRunning();
  }
}

/** Starts the broker's application if it is stopped, and waits until it accepts connections. */
export async function ensureBrokerRunning(): Promise<void> {
  await run('rabbitmqctl', ['start_app'], { timeout: 120_000 }).catch(async () => {
    await run('rabbitmq-server', ['-detached']).catch(() => undefined);
  });
  await run('rabbitmqctl', ['await_startup'], { timeout: 120_000 }).catch(() => undefined);
  for (let i = 0; i < 120; i++) {
    if ((await probeBroker('RabbitMQ', host, port, 1_000)) === undefined) return;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}
