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

/** Every (channel, group) pair the saga consumes: declared before the first order so nothing is unroutable. */
export function consumerGroups(): { channel: string; group: ServiceName }[] {
  const out: { channel: string; group: ServiceName }[] = [];
  for (const service of SERVICES) {
    for (const operation of RECEIVES[service]) out.push({ channel: OPERATIONS[operation].channel, group: service });
  }
  return out;
}

/** The CloudEvents `source` of each service's events. */
export function sourceOf(service: ServiceName): string {
  return `urn:wharf:${service}-service`;
}
