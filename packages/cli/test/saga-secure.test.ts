import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type NatsConnection, PermissionViolationError } from '@nats-io/transport-node';
import { brokersRequired } from '@wharf/conformance';
import { type Bus, consoleLogger, createBus, NotAuthorizedError } from '@wharf/core';
import { SAGA_RETRY, serviceAccess } from '@wharf/example-order-saga';
import { Names } from '@wharf/kafka';
import type { RabbitMqRaw } from '@wharf/rabbitmq';
import type { Channel } from 'amqplib';
import type { Kafka } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { wharf } from './wharf.js';

// `wharf saga --secure` starts (through `brokers up secure`) a RabbitMQ node, nats-server and Kafka node of its own.
const missing = [
  process.env.WHARF_RABBITMQ_SERVER ?? '/usr/lib/rabbitmq/bin/rabbitmq-server',
  process.env.WHARF_NATS_SERVER ?? '/usr/sbin/nats-server',
].filter((binary) => !existsSync(binary));
const unavailable = missing.length > 0 ? `not installed: ${missing.join(', ')}` : undefined;
if (unavailable && brokersRequired()) throw new Error(`[wharf] secure saga tests: ${unavailable}`);
if (unavailable) process.stdout.write(`[wharf] secure saga tests skipped: ${unavailable}\n`);

interface Endpoint {
  url: string;
  args: string[];
}

const KINDS = ['rabbitmq', 'nats', 'kafka'] as const;
type Kind = (typeof KINDS)[number];

/** The broker URL with the TLS files `brokers up secure` printed as flags (what the CLI's connection does). */
function tlsUrl(endpoint: Endpoint): string {
  const params = new URLSearchParams();
  // Kafka's SASL_SSL listener asks for no client certificate: only the CA is printed.
  for (const [flag, param] of [
    ['--tls-ca', 'ca'],
    ['--tls-cert', 'cert'],
    ['--tls-key', 'key'],
  ] as const) {
    const at = endpoint.args.indexOf(flag);
    if (at >= 0) params.set(param, endpoint.args[at + 1] as string);
  }
  return `${endpoint.url}${endpoint.url.includes('?') ? '&' : '?'}${params}`;
}

/**
 * Issue 17 end to end: `wharf saga --secure` runs every service as a user of its own that may publish
 * only where it sends and consume only its own group, on RabbitMQ and on NATS over mutual TLS, and on
 * Kafka over TLS with SCRAM and ACLs; then a
 * service's credentials are tried where the saga's topology gives it no right, and each refusal must be
 * the typed `NotAuthorizedError`, quickly. Every byte printed is checked for passwords at the end.
 */
describe.skipIf(unavailable !== undefined)('wharf saga --secure (least privilege per service)', () => {
  const dir = join(mkdtempSync(join(tmpdir(), 'wharf-saga-secure-')), 'brokers');
  const outputs: string[] = [];
  const buses: Bus[] = [];
  let endpoints: Record<Kind, Endpoint>;
  const run = async (...args: string[]) => {
    const result = await wharf(...args);
    outputs.push(result.stdout, result.stderr);
    return result;
  };
  const namespace = (kind: Kind) => `lp-${kind}`;
  /** A bus that connects as the saga's user of `service` on `kind`, with the password the run wrote. */
  const busAs = (kind: Kind, service: string, urlParams = ''): Bus => {
    const user = `${namespace(kind)}-${service}`;
    const password = readFileSync(join(dir, 'users', `${kind}-${user}.password`), 'utf8');
    const adapterOptions =
      kind === 'nats'
        ? { user, pass: password, inboxPrefix: `_INBOX_${user}`, purgeIntervalMs: 0 }
        : { username: user, password };
    const bus = createBus({
      url: `${tlsUrl(endpoints[kind])}${urlParams}`,
      adapterOptions,
      source: 'urn:wharf:least-privilege-test',
      logger: consoleLogger('error'),
    });
    buses.push(bus);
    return bus;
  };

  /** Everything the broker of `kind` has logged so far. */
  const brokerLog = (kind: Kind): string => {
    const logs = {
      rabbitmq: join(dir, 'rabbitmq', 'log'),
      nats: join(dir, 'nats-main'),
      kafka: join(dir, 'kafka', 'logs'),
    }[kind];
    return readdirSync(logs)
      .filter((name) => name.endsWith('.log') || /^server\.log\.\d+$/.test(name))
      .map((name) => readFileSync(join(logs, name), 'utf8'))
      .join('\n');
  };

  beforeAll(async () => {
    process.env.WHARF_SECURE_DIR = dir;
    const up = await run('brokers', 'up', 'secure', '--json');
    expect(up.code, up.stderr).toBe(0);
    endpoints = JSON.parse(up.stdout);
  }, 180_000);

  afterAll(async () => {
    await Promise.all(buses.map((bus) => bus.close().catch(() => {})));
    const down = await run('brokers', 'down', 'secure');
    delete process.env.WHARF_SECURE_DIR;
    expect(down.code).toBe(0);
    rmSync(join(dir, '..'), { recursive: true, force: true });
  }, 60_000);

  it.each(KINDS)(
    'the saga keeps its invariants on %s with a least-privilege user per service',
    async (kind) => {
      const started = performance.now();
      const result = await run(
        'saga',
        '--secure',
        '--broker',
        kind,
        '--namespace',
        namespace(kind),
        '--orders',
        '60',
        '--seed',
        '5',
        '--json',
      );
      expect(result.code, result.stderr).toBe(0);
      const summary = JSON.parse(result.stdout) as { ok: boolean; unsettled: number; run: { broker: string } };
      expect(summary.ok).toBe(true);
      expect(summary.unsettled).toBe(0);
      expect(summary.run.broker).toBe(kind);
      expect(performance.now() - started).toBeLessThan(60_000);
      for (const { service } of serviceAccess()) {
        const user = `${namespace(kind)}-${service}`;
        expect(result.stderr).toContain(user);
        const file = join(dir, 'users', `${kind}-${user}.password`);
        expect(statSync(file).mode & 0o777, file).toBe(0o600);
      }
      // The brokers' logs: nothing any service did was refused (the grants cover exactly what the run
      // needs; the secure Kafka node logs every refused operation), and on RabbitMQ, which logs who
      // authenticated, every service connected as its own user.
      const log = brokerLog(kind);
      const refusal = { rabbitmq: /access_refused|ACCESS_REFUSED/, nats: /Violation/, kafka: /is Denied operation/ };
      expect(log).not.toMatch(refusal[kind]);
      if (kind === 'rabbitmq') {
        for (const { service } of serviceAccess()) {
          expect(log).toContain(`user '${namespace(kind)}-${service}' authenticated`);
        }
      }
    },
    120_000,
  );

  it.each(KINDS)(
    "on %s a service's credentials publish only where it sends and consume only its own group",
    async (kind) => {
      const access = serviceAccess(namespace(kind));
      const inventory = access.find((a) => a.service === 'inventory');
      if (!inventory) throw new Error('the saga has no inventory service');
      // A channel inventory consumes but never sends on, a channel it has nothing to do with, and
      // another service's group on a channel inventory sends on.
      const consumedOnly = inventory.consumes.map((c) => c.channel).find((c) => !inventory.sends.includes(c));
      const unrelated = access
        .flatMap((a) => a.sends)
        .find((c) => !inventory.sends.includes(c) && !inventory.consumes.some((g) => g.channel === c));
      const sent = inventory.sends[0];
      const othersGroup = access
        .flatMap((a) => a.consumes)
        .find((c) => c.group !== 'inventory' && inventory.sends.includes(c.channel));
      if (!consumedOnly || !unrelated || !sent || !othersGroup)
        throw new Error('the topology changed: pick other cases');

      // On Kafka this bus runs on kafkajs (below, its raw() is a kafkajs Kafka); `other` on the default client.
      const bus = busAs(kind, 'inventory', kind === 'kafka' ? '&client=kafkajs' : '');
      await bus.connect();
      // The control: the same credentials may publish where inventory sends.
      await bus.publish(sent, { type: 'LeastPrivilegeProbe', data: { ok: true } });

      const refused = async (what: string, attempt: () => Promise<unknown>) => {
        const started = performance.now();
        let timer: NodeJS.Timeout | undefined;
        const hung = new Promise<Error>((resolve) => {
          timer = setTimeout(() => resolve(new Error(`${what}: no answer within 10 s`)), 10_000);
        });
        const error = await Promise.race([
          attempt().then(
            () => undefined,
            (e: unknown) => e,
          ),
          hung,
        ]);
        clearTimeout(timer);
        const ms = performance.now() - started;
        expect(error, `${what}: ${String(error)}`).toBeInstanceOf(NotAuthorizedError);
        expect(ms, `${what} took ${Math.round(ms)} ms to be refused`).toBeLessThan(5_000);
        return error as NotAuthorizedError;
      };
      for (const channel of [consumedOnly, unrelated]) {
        await refused(`publishing to ${channel}`, () =>
          bus.publish(channel, { type: 'LeastPrivilegeProbe', data: { forged: true } }),
        );
      }
      await refused(`consuming ${othersGroup.channel} in group ${othersGroup.group}`, () =>
        bus.subscribe(othersGroup.channel, { group: othersGroup.group }, async () => {}),
      );
      // Below the bus, on the native connection, what the bus never tries.
      const adapter = bus.adapter;
      if (!adapter) throw new Error('no adapter');
      if (kind === 'rabbitmq') {
        const model = (adapter.raw() as RabbitMqRaw).publishing;
        if (!model) throw new Error('not connected');
        const attempt = async (operation: (ch: Channel) => Promise<unknown>): Promise<string> => {
          const ch = await model.createChannel();
          ch.on('error', () => undefined);
          return operation(ch).then(
            () => 'allowed',
            (e: Error) => e.message,
          );
        };
        // Deleting the exchange of a channel inventory sends on, and consuming another group's existing queue.
        expect(await attempt((ch) => ch.deleteExchange(`wharf.${sent}`))).toMatch(/ACCESS_REFUSED/);
        expect(
          await attempt((ch) => ch.consume(`wharf.${othersGroup.channel}/${othersGroup.group}`, () => {})),
        ).toMatch(/ACCESS_REFUSED/);
      } else if (kind === 'kafka') {
        const names = new Names('wharf');
        const admin = (adapter.raw() as Kafka).admin();
        await admin.connect();
        const attempt = (operation: () => Promise<unknown>): Promise<string> =>
          operation().then(
            () => 'allowed',
            (e: { type?: string; errors?: { type?: string }[]; message: string }) =>
              [e.type, ...(e.errors ?? []).map((x) => x.type), e.message].join(' '),
          );
        try {
          // Deleting the topic of a channel inventory sends on, creating a topic, and reading another
          // group's committed offsets.
          expect(await attempt(() => admin.deleteTopics({ topics: [names.channel(sent)], timeout: 3_000 }))).toMatch(
            /TOPIC_AUTHORIZATION_FAILED/,
          );
          expect(
            await attempt(() => admin.createTopics({ topics: [{ topic: names.channel(`${sent}.forged`) }] })),
          ).toMatch(/TOPIC_AUTHORIZATION_FAILED/);
          // kafkajs reports a refused FindCoordinator as "Failed to find group coordinator" (see the
          // adapter's client.ts): the broker's log says what it refused.
          const othersId = names.group(othersGroup.channel, othersGroup.group);
          expect(
            await attempt(() =>
              admin.fetchOffsets({ groupId: othersId, topics: [names.channel(othersGroup.channel)] }),
            ),
          ).toMatch(/GROUP_AUTHORIZATION_FAILED|Failed to find group coordinator/);
          const denied = brokerLog(kind)
            .split('\n')
            .filter((line) => line.includes(`User:${namespace(kind)}-inventory is Denied operation = DESCRIBE`));
          expect(
            denied.some((line) => line.includes(othersId) && /GROUP/i.test(line)),
            denied.join('\n'),
          ).toBe(true);
        } finally {
          await admin.disconnect();
        }
        // The other client (@platformatic/kafka, the default) with the same ACLs: it joins inventory's own group and
        // is refused elsewhere the same way. With the saga's retry policy: the run declared those retry
        // topics, and a user may not create others.
        const other = busAs(kind, 'inventory', '&client=platformatic');
        const own = inventory.consumes[0];
        if (!own) throw new Error('inventory consumes nothing');
        const subscription = await other.subscribe(
          own.channel,
          { group: own.group, retry: SAGA_RETRY },
          async () => {},
        );
        await subscription.close();
        // What a service's metrics read on a scrape: its group's backlog (the dead-letter reader's offsets too).
        for (const reader of [bus, other]) {
          const backlog = await reader.backlog(own.channel, own.group, { retry: SAGA_RETRY });
          expect(backlog.deadLetters).toBeGreaterThanOrEqual(0);
        }
        await refused(`publishing to ${consumedOnly} with @platformatic/kafka`, () =>
          other.publish(consumedOnly, { type: 'LeastPrivilegeProbe', data: { forged: true } }),
        );
      } else {
        // Reading another user's replies (its pulled messages, PubAcks) through its inbox prefix.
        const nc = adapter.raw() as NatsConnection;
        const refusedSubscription = (async () => {
          for await (const status of nc.status()) {
            if (status.type === 'error' && status.error instanceof PermissionViolationError) return status.error;
          }
          return undefined;
        })();
        nc.subscribe(`_INBOX_${namespace(kind)}-payment.>`);
        const violation = await Promise.race([
          refusedSubscription,
          new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 5_000)),
        ]);
        expect(violation?.operation).toBe('subscription');
        expect(violation?.subject).toBe(`_INBOX_${namespace(kind)}-payment.>`);
      }
    },
    60_000,
  );

  // Last: it reads every output of the runs above.
  it('no output of any run contains a password', () => {
    const files = [
      ...readdirSync(dir).map((name) => join(dir, name)),
      ...readdirSync(join(dir, 'users')).map((name) => join(dir, 'users', name)),
    ].filter((file) => file.endsWith('.password'));
    const secrets = files.map((file) => readFileSync(file, 'utf8'));
    // The three admin users, the three "limited" ones, and five service users on each broker.
    expect(secrets.length).toBeGreaterThanOrEqual(21);
    const all = outputs.join('\n');
    expect(all).toContain('least privilege on rabbitmq');
    for (const secret of secrets) {
      expect(secret.length).toBeGreaterThan(16);
      expect(all.includes(secret), `a password (${secret.slice(0, 4)}…) appears in the output`).toBe(false);
    }
  });
});
