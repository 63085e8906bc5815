import type { CloudEvent, HandlerContext } from '@wharf/core';
import { eventKey } from '../state/store.js';
import { RECEIVES } from '../topology.js';
import type { Service, ServiceContext } from './runtime.js';

/** One entry of the audit log: an event as it was first seen. Entries are only ever added. */
export interface AuditRecord {
  type: string;
  channel: string;
  orderId: string;
  source: string;
  id: string;
  time: string | undefined;
  recordedAt: string;
}

/** Audit service: consumes every channel in its own group and appends each event to its log once. */
export async function startAuditService(ctx: ServiceContext): Promise<Service> {
  const { bus, stores, retry, concurrency } = ctx;

  const record = async (event: CloudEvent, context: HandlerContext): Promise<void> => {
    const orderId = event.subject ?? (event.data as { orderId?: string } | undefined)?.orderId ?? '';
    const added = await stores.audit.update(eventKey(orderId, event.source, event.id), (current) => {
      if (current) return { result: false };
      const entry: AuditRecord = {
        type: event.type,
        channel: context.channel,
        orderId,
        source: event.source,
        id: event.id,
        time: event.time,
        recordedAt: new Date().toISOString(),
      };
      return { value: entry, result: true };
    });
    if (!added) ctx.counters.duplicates++;
  };

  const subscriptions = await Promise.all(
    RECEIVES.audit.map((operation) =>
      bus.on(operation, { group: ctx.name, concurrency, retry }, (event, context) =>
        record(event as CloudEvent, context),
      ),
    ),
  );

  return {
    name: ctx.name,
    async stop() {
      await Promise.all(subscriptions.map((s) => s.close()));
    },
  };
}
