import { FLAKY_FAILURES, gatewayBehaviour } from '../catalog.js';
import type { Money } from '../contract.js';
import type { Service, ServiceContext } from './runtime.js';

/** The payment ledger: one record per order, created by the only charge it may ever get. */
export interface PaymentRecord {
  orderId: string;
  status: 'charged' | 'declined';
  paymentId: string;
  amount: Money;
  /** Charges made for this order: 1 when charged, 0 when declined. */
  charges: number;
  /** Gateway calls it took (delivery attempt of the successful call). */
  attempts: number;
  published: boolean;
}

/** The gateway timed out or answered 503: worth retrying. */
export class GatewayUnavailableError extends Error {
  override readonly name = 'GatewayUnavailableError';
}

/** The gateway client crashed on this card: no retry helps (the poison case). */
export class GatewayClientCrashError extends Error {
  override readonly name = 'GatewayClientCrashError';
}

/** Payment service: charges each reserved order exactly once through a sandbox gateway. */
export async function startPaymentService(ctx: ServiceContext): Promise<Service> {
  const { bus, stores, retry, concurrency } = ctx;

  const subscription = await bus.on(
    'paymentOnInventoryReserved',
    { group: ctx.name, concurrency, retry },
    (event, context) => {
      const reserved = event.data!;
      const { orderId, total } = reserved;
      return ctx.lock.run(orderId, async () => {
        const known = await stores.payments.get(orderId);
        if (known?.published) {
          ctx.counters.duplicates++;
          return;
        }
        let record = known;
        if (!record) {
          const behaviour = gatewayBehaviour(total);
          // The sandbox gateway: its answer depends on the amount only, so every broker sees the same outcomes.
          if (behaviour === 'poison') {
            throw new GatewayClientCrashError(`gateway client crashed on order ${orderId}: unsupported card BIN`);
          }
          if (behaviour === 'flaky' && context.attempt <= FLAKY_FAILURES) {
            throw new GatewayUnavailableError(
              `gateway timed out charging order ${orderId} (attempt ${context.attempt})`,
            );
          }
          const charged = behaviour !== 'decline';
          const candidate: PaymentRecord = {
            orderId,
            status: charged ? 'charged' : 'declined',
            paymentId: `pay_${orderId.slice(4)}`,
            amount: total,
            charges: charged ? 1 : 0,
            attempts: context.attempt,
            published: false,
          };
          // Create-if-absent: a replica that raced us to the same order charges nothing.
          record = await stores.payments.update(orderId, (current) =>
            current ? { result: current } : { value: candidate, result: candidate },
          );
        }
        const now = new Date().toISOString();
        if (record.status === 'charged') {
          await ctx.emit(
            'completePayment',
            {
              orderId,
              paymentId: record.paymentId,
              amount: record.amount,
              attempts: record.attempts,
              completedAt: now,
            },
            event,
          );
        } else {
          await ctx.emit(
            'failPayment',
            {
              orderId,
              reservationId: reserved.reservationId,
              paymentId: record.paymentId,
              amount: record.amount,
              reason: 'declined',
              message: 'card declined by issuer (sandbox amount ending in 51)',
              failedAt: now,
            },
            event,
          );
        }
        await stores.payments.update(orderId, (current) =>
          current ? { value: { ...current, published: true }, result: undefined } : { result: undefined },
        );
      });
    },
  );

  return {
    name: ctx.name,
    stop: () => subscription.close(),
  };
}
