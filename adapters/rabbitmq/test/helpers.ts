import { randomBytes } from 'node:crypto';
import type { ForeignMessage } from '@wharf/conformance';
import { brokersRequired, probeBroker } from '@wharf/conformance';
import { type LegacyProducer, parseBrokerUrl } from '@wharf/core';
import * as amqp from 'amqplib';
import { conformanceHarness } from '../src/index.js';

// A URL given in the environment (the test command sets one for a container) names the host and
// port too: the probe and the plain-client connections must reach the broker the suites use.
const given = process.env.WHARF_RABBITMQ_URL ? parseBrokerUrl(process.env.WHARF_RABBITMQ_URL).hosts[0] : undefined;
export const host = given?.host ?? process.env.WHARF_RABBITMQ_HOST ?? '127.0.0.1';
export const port = given?.port ?? Number(process.env.WHARF_RABBITMQ_PORT ?? 5672);
export const url = process.env.WHARF_RABBITMQ_URL ?? `amqp://guest:guest@${host}:${port}`;
export const PREFIX = 'wharf';

/** Why the RabbitMQ suites cannot run here, or undefined when the broker answers. */
export const unavailable = await probeBroker('RabbitMQ', host, port);
// Under CI a missing broker fails every suite that imports this, instead of skipping it.
if (unavailable && brokersRequired()) throw new Error(`[wharf] rabbitmq tests need the broker: ${unavailable}`);
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

/** A plain amqplib producer on a queue of its own, for the raw-mode cases. */
export const legacyProducer: () => LegacyProducer = harness.legacyProducer;

/** Deletes every queue this process declared for the channel, the groups' queues and the exchange. */
export const cleanup: (channel: string, groups: readonly string[]) => Promise<void> = harness.cleanup;
