import { contract, type ReceiveOp, type SendOp } from './contract.js';

/** The five services of the saga; each consumes in a group named after itself. */
export const SERVICES = ['order', 'inventory', 'payment', 'notification', 'audit'] as const;
export type ServiceName = (typeof SERVICES)[number];

/** Channel address and CloudEvents type of every operation, read from the generated contract. */
export const OPERATIONS: Readonly<Record<SendOp | ReceiveOp, { readonly channel: string; readonly type: string }>> =
  Object.fromEntries(
    Object.entries(contract.operations).map(([id, operation]) => [
      id,
      {
        channel: contract.channels[operation.channel]!.address,
        type: contract.messages[operation.messages[0]!]!.type,
      },
    ]),
  ) as Record<SendOp | ReceiveOp, { channel: string; type: string }>;

/** The receive operations of each service (its group is the service name). */
export const RECEIVES: Readonly<Record<ServiceName, readonly ReceiveOp[]>> = {
  order: ['orderOnPaymentCompleted', 'orderOnInventoryRejected', 'orderOnInventoryReleased'],
  inventory: ['inventoryOnOrderPlaced', 'inventoryOnPaymentFailed'],
  payment: ['paymentOnInventoryReserved'],
  notification: ['notificationOnOrderConfirmed', 'notificationOnOrderCancelled'],
  audit: [
    'auditOrderPlaced',
    'auditInventoryReserved',
    'auditInventoryRejected',
    'auditInventoryReleased',
    'auditPaymentCompleted',
    'auditPaymentFailed',
    'auditOrderConfirmed',
    'auditOrderCancelled',
    'auditNotificationSent',
  ],
};

/**
 * The send operations of each service: what it publishes, and so the only channels its credentials
 * may write to when the saga runs with least privilege (`wharf saga --secure`).
 */
export const SENDS: Readonly<Record<ServiceName, readonly SendOp[]>> = {
  order: ['placeOrder', 'confirmOrder', 'cancelOrder'],
  inventory: ['reserveInventory', 'rejectInventory', 'releaseInventory'],
  payment: ['completePayment', 'failPayment'],
  notification: ['sendNotification'],
  audit: [],
};

/**
 * The broker channel of a contract address in a namespace: `<namespace>.<address>`, or the address
 * itself without one. A namespace gives a run channels of its own, so saga runs sharing a broker
 * (tests, several engineers) never consume each other's events.
 */
export function namespaced(address: string, namespace: string | undefined): string {
  return namespace ? `${namespace}.${address}` : address;
}

/** Every (channel, group) pair the saga consumes: declared before the first order so nothing is unroutable. */
export function consumerGroups(namespace?: string): { channel: string; group: ServiceName }[] {
  const out: { channel: string; group: ServiceName }[] = [];
  for (const service of SERVICES) {
    for (const operation of RECEIVES[service]) {
      out.push({ channel: namespaced(OPERATIONS[operation].channel, namespace), group: service });
    }
  }
  return out;
}

/** The channels of a namespace with the groups that consume each (what a run declares, and what a test deletes). */
export function channelGroups(namespace?: string): Map<string, ServiceName[]> {
  const groups = new Map<string, ServiceName[]>();
  for (const { channel, group } of consumerGroups(namespace))
    groups.set(channel, [...(groups.get(channel) ?? []), group]);
  return groups;
}

/** The CloudEvents `source` of each service's events. */
export function sourceOf(service: ServiceName): string {
  return `urn:wharf:${service}-service`;
}

/** What one service touches on the broker: the channels it publishes to and the groups it consumes. */
export interface ServiceAccess {
  readonly service: ServiceName;
  /** Channels it publishes to (namespaced). */
  readonly sends: readonly string[];
  /** (channel, group) pairs it consumes; the group is always the service's own name. */
  readonly consumes: readonly { readonly channel: string; readonly group: ServiceName }[];
}

/**
 * Each service's access in a namespace, from the contract's operations: the input from which per-service
 * broker credentials are derived (each adapter's `permissionsFor`), so a service may publish only where it
 * sends and consume only its own group.
 */
export function serviceAccess(namespace?: string): ServiceAccess[] {
  return SERVICES.map((service) => ({
    service,
    sends: [...new Set(SENDS[service].map((op) => namespaced(OPERATIONS[op].channel, namespace)))],
    consumes: consumerGroups(namespace).filter(({ group }) => group === service),
  }));
}
