import { type Bus, type DeadLetter, parseBrokerUrl } from '@wharf/core';
import type { Checked, SagaProgress } from './options.js';
import type { PlannedOrder } from './scenario.js';
import type { Stores } from './state/store.js';
import type { Observation } from './summary.js';
import { consumerGroups } from './topology.js';

/** Polls the services' state until every order is terminal or dead-lettered and the audit log caught up. */
export async function observe(
  o: Checked,
  plan: readonly PlannedOrder[],
  stores: Stores,
  bus: Bus,
  runId: string,
  progress: (phase: SagaProgress['phase'], placed: number, settled: number) => void,
): Promise<Omit<Observation, 'stats'>> {
  const prefix = `ord_${runId}-`;
  const deadline = performance.now() + o.timeoutMs;
  const local = !o.stateDir && parseBrokerUrl(o.url).scheme === 'memory';
  const pollMs = o.stateDir ? 200 : 100;
  const deadLetterEveryMs = local ? 100 : 500;
  let deadLetters: Observation['deadLetters'] = [];
  let lastDeadLetterCheck = 0;
  let lastReported = -1;
  for (;;) {
    const terminal = new Set<string>();
    for (const [id, order] of await stores.orders.list(prefix)) if (order.state !== 'placed') terminal.add(id);
    const now = performance.now();
    if (terminal.size + deadLetters.length < plan.length && now - lastDeadLetterCheck > deadLetterEveryMs) {
      deadLetters = await listDeadLetters(bus, prefix, o.namespace);
      lastDeadLetterCheck = performance.now();
    }
    const dead = new Set(deadLetters.map((d) => d.orderId).filter((id) => !terminal.has(id)));
    const settled = terminal.size + dead.size;
    if (settled !== lastReported) progress('settling', plan.length, settled);
    lastReported = settled;
    if (settled >= plan.length && (await caughtUp(stores, prefix, terminal.size))) break;
    if (now > deadline) break;
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
  // One last look, so the summary sees every dead letter and counter of the final state.
  await new Promise((resolve) => setTimeout(resolve, o.stateDir ? 300 : 0));
  deadLetters = await listDeadLetters(bus, prefix, o.namespace);
  return { plan, orders: new Map(await stores.orders.list(prefix)), deadLetters };
}

/** True when every terminal order was notified and the audit log holds every published event of the run. */
async function caughtUp(stores: Stores, prefix: string, terminal: number): Promise<boolean> {
  const notified = (await stores.notifications.list(prefix)).filter(([, r]) => r.published).length;
  if (notified < terminal) return false;
  const published = (await stores.published.list(prefix)).length;
  const logged = (await stores.audit.list(prefix)).length;
  return logged >= published;
}

async function listDeadLetters(
  bus: Bus,
  prefix: string,
  namespace: string | undefined,
): Promise<Observation['deadLetters']> {
  const out: { orderId: string; deadLetter: DeadLetter }[] = [];
  for (const { channel, group } of consumerGroups(namespace)) {
    for (const deadLetter of await bus.listDeadLetters(channel, group, { limit: 100_000 })) {
      const event = deadLetter.event;
      const orderId = event?.subject ?? (event?.data as { orderId?: string } | undefined)?.orderId ?? '';
      if (orderId.startsWith(prefix)) out.push({ orderId, deadLetter });
    }
  }
  return out;
}
