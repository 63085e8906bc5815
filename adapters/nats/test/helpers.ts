import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { ForeignMessage } from '@wharf/conformance';
import { brokersRequired, probeBroker } from '@wharf/conformance';
import { type LegacyProducer, type Logger, parseBrokerUrl, silentLogger } from '@wharf/core';
import createNatsAdapter, { conformanceHarness, type NatsAdapter, type NatsAdapterOptions } from '../src/index.js';

const run = promisify(execFile);

// A URL given in the environment (the test command sets one for a container) names the host and
// port too: the probe and the plain-client connections must reach the broker the suites use.
const given = process.env.WHARF_NATS_URL ? parseBrokerUrl(process.env.WHARF_NATS_URL).hosts[0] : undefined;
export const host = given?.host ?? process.env.WHARF_NATS_HOST ?? '127.0.0.1';
export const port = given?.port ?? Number(process.env.WHARF_NATS_PORT ?? 4222);
export const url = process.env.WHARF_NATS_URL ?? `nats://${host}:${port}`;

/** Why the NATS suites cannot run here, or undefined when the server answers. */
export const unavailable = await probeBroker('NATS', host, port);
// Under CI a missing broker fails every suite that imports this, instead of skipping it.
if (unavailable && brokersRequired()) throw new Error(`[wharf] nats tests need the broker: ${unavailable}`);
if (unavailable) process.stdout.write(`[wharf] nats tests: ${unavailable}\n`);

/** A name no other test or run uses. */
export function unique(label: string): string {
  return `${label}-${randomBytes(4).toString('hex')}`;
}

export function adapter(options: NatsAdapterOptions = {}, logger: Logger = silentLogger): NatsAdapter {
  return createNatsAdapter({ url, logger, ...options });
}

/** Runs `work` on a plain nats.js connection. */
export async function withConnection<T>(work: (nc: NatsConnection) => Promise<T>): Promise<T> {
  const nc = await connect({ servers: `${host}:${port}`, noAsyncTraces: true });
  try {
    return await work(nc);
  } finally {
    await nc.close().catch(() => undefined);
  }
}

const harness = conformanceHarness(url);

/** Sends a message to the channel's subject with raw nats.js JetStream, as a non-Wharf producer would. */
export function publishForeign(channel: string, message: ForeignMessage): Promise<void> {
  return harness.publishForeign(channel, message);
}

/** A plain nats.js JetStream producer on a stream and subject of its own, for the raw-mode cases. */
export const legacyProducer: () => LegacyProducer = harness.legacyProducer;

/** Deletes the channel's stream (its consumers go with it) and its dead-letter stream. */
export function cleanup(channel: string, groups: readonly string[] = []): Promise<void> {
  return harness.cleanup(channel, groups);
}

const START = [
  '--start',
  '--oknodo',
  '--background',
  '--exec',
  '/usr/sbin/nats-server',
  '--',
  '-a',
  '127.0.0.1',
  '-p',
  '4222',
  '-js',
  '-sd',
  '/var/lib/nats-server',
  '-l',
  '/var/log/nats-server.log',
];

/** Waits until the server accepts TCP connections again. */
async function waitForServer(timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while ((await probeBroker('NATS', host, port, 500)) !== undefined) {
    if (Date.now() > deadline) throw new Error(`nats-server did not come back within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Starts the shared nats-server (idempotent: --oknodo). */
export async function startServer(): Promise<void> {
  await run('start-stop-daemon', START);
  await waitForServer(20_000);
}

/** Stops the shared nats-server, waits `downMs`, and always starts it again. */
export async function restartServer(downMs = 1_500): Promise<void> {
  try {
    await run('start-stop-daemon', ['--stop', '--oknodo', '--retry', '10', '--exec', '/usr/sbin/nats-server']);
    await new Promise((r) => setTimeout(r, downMs));
  } finally {
    await startServer();
  }
}
