import { Inject, Injectable, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import type { Bus, CloudEvent, HandlerContext, Subscription } from '@wharf/core';
import { OnEvent } from './on-event.js';
import { InjectBus } from './wharf.module.js';

/** The sample's channels and groups. */
export const ORDERS = 'orders.placed';
export const PAYMENTS = 'payments.charged';
export const BILLING = 'billing';
export const RECEIPTS = 'receipts';

/** An order as `OrderPlaced` carries it. */
export interface Order {
  orderId: string;
  total: number;
}

/** What `PaymentCharged` carries. */
export interface Payment {
  orderId: string;
  amount: number;
}

/** The sample's own settings. */
export interface SampleSettings {
  /** How long charging takes, to show that shutdown waits for running handlers. Default 0. */
  chargeMs?: number;
  /** Told when a charge starts and ends (the demo prints; a test watches). */
  onCharge?: (stage: 'start' | 'end', orderId: string) => void;
}

export const SAMPLE_SETTINGS = Symbol('SAMPLE_SETTINGS');

/** Publishes orders: the producing side, with the bus injected. */
@Injectable()
export class Orders {
  constructor(@InjectBus() private readonly bus: Bus) {}

  place(order: Order): Promise<CloudEvent<Order>> {
    return this.bus.publish<Order>(ORDERS, { type: 'OrderPlaced', data: order });
  }
}

/** Handlers declared with `@OnEvent`: charges each order, then publishes the follow-up event. */
@Injectable()
export class Billing {
  readonly charged = new Map<string, number>();

  constructor(@Inject(SAMPLE_SETTINGS) private readonly settings: SampleSettings) {}

  @OnEvent(ORDERS, { group: BILLING, retry: { maxAttempts: 3, delays: [1_000, 5_000] } })
  async charge(event: CloudEvent<Order>, ctx: HandlerContext): Promise<void> {
    const order = event.data!;
    this.settings.onCharge?.('start', order.orderId);
    if (this.settings.chargeMs) await new Promise((resolve) => setTimeout(resolve, this.settings.chargeMs));
    this.charged.set(order.orderId, order.total);
    // ctx.publish sets causationid and carries correlationid and trace context from the order.
    await ctx.publish<Payment>(PAYMENTS, {
      type: 'PaymentCharged',
      data: { orderId: order.orderId, amount: order.total },
    });
    this.settings.onCharge?.('end', order.orderId);
  }
}

/** A handler registered explicitly with `bus.subscribe`, for code that prefers no decorators. */
@Injectable()
export class Receipts implements OnModuleInit, OnModuleDestroy {
  readonly sent: Payment[] = [];
  #subscription: Subscription | undefined;

  constructor(@InjectBus() private readonly bus: Bus) {}

  async onModuleInit(): Promise<void> {
    this.#subscription = await this.bus.subscribe<Payment>(PAYMENTS, { group: RECEIPTS }, (event) => {
      this.sent.push(event.data!);
    });
  }

  // Optional: WharfModule closes the bus, and with it this subscription, at application shutdown.
  // Closing it here stops receipts first, while the rest of the application is still up.
  async onModuleDestroy(): Promise<void> {
    await this.#subscription?.close();
  }
}
