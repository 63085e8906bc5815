import { type Bus, type DeadLetter, type Logger, parseBrokerUrl } from '@wharf/core';
import { untilBrokerAnswers } from './broker-wait.js';
import type { Checked, SagaProgress } from './options.js';
import type { PlannedOrder } from './scenario.js';
import type { Stores } from './state/store.js';
import type { Observation } from './summary.js';
import { consumerGroups } from './topology.js';

/**
 * Polls the services' state until every order is terminal or dead-lettered and the audit log caught
 * up. A terminal order never changes again, so each poll reads only the orders and notifications
 * not yet seen final, and counts the audit log and the published ledger by key: with the file store
 * of a multi-process run, reading every record on every poll cost more CPU than the services.
 */
export async function observe(
  o: Checked,
  plan: readonly PlannedOrder[],
  stores: Stores,
  bus: Bus,
  runId: string,
  progress: (phase: SagaProgress['phase'], placed: number, settled: number) => void,
  logger: Logger,
): Promise<Omit<Observation, 'stats'>> {
  const prefix = `ord_${runId}-`;
  const deadline = performance.now() + o.timeoutMs;
  const local = !o.stateDir && parseBrokerUrl(o.url).scheme === 'memory';
  const pollMs = o.stateDir ? 500 : 100;
  const deadLetterEveryMs = local ? 100 : 1_000;
  let deadLetters: Observation['deadLetters'] = [];
  let lastDeadLetterCheck = 0;
  let lastReported = -1;
  const terminal = new Set<string>();
  const notified = new Set<string>();
  for (;;) {
    for (const { orderId } of plan) {
      if (terminal.has(orderId)) continue;
      const order = await stores.orders.get(orderId);
      if (order && order.state !== 'placed') terminal.add(orderId);
    }
    const now = performance.now();
    if (terminal.size + deadLetters.length < plan.length && now - lastDeadLetterCheck > deadLetterEveryMs) {
      try {
        deadLetters = await listDeadLetters(bus, prefix, o.namespace);
      } catch (error) {
        // The broker may be restarting: keep what we had and look again at the next poll.
        logger.warn(
          `[saga] cannot read the dead letters yet: ${error instanceof Error ? error.message : String(error)}`,
        );
      }
      lastDeadLetterCheck = performance.now();
    }
    const dead = new Set(deadLetters.map((d) => d.orderId).filter((id) => !terminal.has(id)));
    const settled = terminal.size + dead.size;
    if (settled !== lastReported) progress('settling', plan.length, settled);
    lastReported = settled;
    if (settled >= plan.length && (await caughtUp(stores, prefix, terminal, notified))) break;
    if (now > deadline) break;
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
  // One last look, so the summary sees every dead letter and counter of the final state.
  await new Promise((resolve) => setTimeout(resolve, o.stateDir ? 300 : 0));
  deadLetters = await untilBrokerAnswers('reading the dead letters', () => listDeadLetters(bus, prefix, o.namespace), {
    waitMs: 60_000,
    logger,
  });
  return { plan, orders: new Map(await stores.orders.list(prefix)), deadLetters };
}

/** True when every terminal order was notified and the audit log holds every published event of the run. */
async function caughtUp(
  stores: Stores,
  prefix: string,
  terminal: ReadonlySet<string>,
  notified: Set<string>,
): Promise<boolean> {
  for (const orderId of terminal) {
    if (notified.has(orderId)) continue;
    if (!(await stores.notifications.get(orderId))?.published) return false;
    notified.add(orderId);
  }
  const published = (await stores.published.keys(prefix)).length;
  const logged = (await stores.audit.keys(prefix)).length;
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
