import {
  addKafkaUsers,
  addNatsUsers,
  addRabbitMqUsers,
  type KafkaGrant,
  type NatsGrant,
  type RabbitMqGrant,
} from '@wharf/chaos';
import { permissionsFor as kafkaPermissions } from '@wharf/kafka';
import { permissionsFor as natsPermissions } from '@wharf/nats';
import { permissionsFor as rabbitMqPermissions } from '@wharf/rabbitmq';
import type { SecureState } from './secure.js';

/** What a service touches on the broker (the saga example's `serviceAccess`), in plain terms. */
export interface ServiceAccess {
  readonly service: string;
  readonly sends: readonly string[];
  readonly consumes: readonly { readonly channel: string; readonly group: string }[];
}

/** One service's user: its name, its rights on the broker, and the inbox prefix its NATS connections use. */
export interface ServiceGrant<G> {
  readonly service: string;
  readonly user: string;
  readonly grant: G;
  /** NATS only: `_INBOX_<user>`, the only inboxes the user may subscribe to. */
  readonly inboxPrefix?: string;
}

/** The user name of a service: `saga-<service>`, or `<namespace>-<service>` (a run's users never change another's). */
export function serviceUser(service: string, namespace: string | undefined): string {
  return `${namespace ?? 'saga'}-${service}`;
}

/** The brokers `wharf saga --secure` runs on. */
export const SECURE_SAGA_KINDS = ['rabbitmq', 'nats', 'kafka'] as const;
export type SecureSagaKind = (typeof SECURE_SAGA_KINDS)[number];

/**
 * The least rights of each service on a broker, from the saga's topology: publish only to the channels
 * it sends on, declare and consume only its own group (its queues / its durable consumers / its
 * consumer groups with their retry and dead-letter topics). Pure: the rights come from each adapter's
 * `permissionsFor`, which knows how it names exchanges, queues, streams, subjects and topics.
 */
export function sagaGrants(
  kind: 'rabbitmq',
  access: readonly ServiceAccess[],
  namespace?: string,
): ServiceGrant<RabbitMqGrant>[];
export function sagaGrants(
  kind: 'nats',
  access: readonly ServiceAccess[],
  namespace?: string,
): ServiceGrant<NatsGrant>[];
export function sagaGrants(
  kind: 'kafka',
  access: readonly ServiceAccess[],
  namespace?: string,
): ServiceGrant<KafkaGrant>[];
export function sagaGrants(
  kind: SecureSagaKind,
  access: readonly ServiceAccess[],
  namespace?: string,
): ServiceGrant<RabbitMqGrant | NatsGrant | KafkaGrant>[] {
  return access.map((a) => {
    const user = serviceUser(a.service, namespace);
    if (kind === 'rabbitmq') return { service: a.service, user, grant: rabbitMqPermissions(a) };
    if (kind === 'kafka') return { service: a.service, user, grant: kafkaPermissions(a) };
    const inboxPrefix = `_INBOX_${user}`;
    return { service: a.service, user, inboxPrefix, grant: natsPermissions(a, { inboxPrefix }) };
  });
}

/** A service's user as `runSaga`'s `serviceAdapterOptions` takes it; the password never leaves this process. */
export type ServiceAdapterOptions = Record<string, Record<string, unknown>>;

/**
 * Creates (or renews) one user per saga service on the running secure broker of `kind`, each with a new
 * random password in a file of its own (mode 0600, in `<dir>/users`), and returns the adapter options that
 * make each service's buses connect as its user.
 */
export async function secureSagaUsers(
  state: SecureState,
  kind: SecureSagaKind,
  access: readonly ServiceAccess[],
  namespace?: string,
): Promise<{ users: string[]; options: ServiceAdapterOptions }> {
  const endpoint = state[kind];
  if (!endpoint) throw new Error(`the secure brokers in ${state.dir} have no ${kind}`);
  const port = Number(new URL(endpoint.url).port);
  const options: ServiceAdapterOptions = {};
  if (kind === 'rabbitmq') {
    const grants = sagaGrants('rabbitmq', access, namespace);
    const made = await addRabbitMqUsers(
      { dir: state.dir, port },
      grants.map((g) => ({ name: g.user, grant: g.grant })),
    );
    grants.forEach((g, i) => {
      options[g.service] = { username: g.user, password: made[i]?.password };
    });
    return { users: grants.map((g) => g.user), options };
  }
  if (kind === 'kafka') {
    const grants = sagaGrants('kafka', access, namespace);
    const made = await addKafkaUsers(
      { dir: state.dir, port },
      grants.map((g) => ({ name: g.user, grant: g.grant })),
    );
    grants.forEach((g, i) => {
      // SCRAM from the URL (`?mechanism=scram-sha-512`, as `brokers up secure` prints it).
      options[g.service] = { username: g.user, password: made[i]?.password };
    });
    return { users: grants.map((g) => g.user), options };
  }
  const grants = sagaGrants('nats', access, namespace);
  const made = await addNatsUsers(
    { dir: state.dir, port, pids: state.pids },
    grants.map((g) => ({ name: g.user, grant: g.grant })),
  );
  grants.forEach((g, i) => {
    // purgeIntervalMs 0: purging settled events needs rights over other groups' consumers; the admin coordinator purges.
    options[g.service] = { user: g.user, pass: made[i]?.password, inboxPrefix: g.inboxPrefix, purgeIntervalMs: 0 };
  });
  return { users: grants.map((g) => g.user), options };
}
