/**
 * The chaos consumer, run as its own process so a scenario can kill -9 or SIGSTOP it. Configured by
 * the WHARF_CHAOS_CONSUMER environment variable (JSON of {@link ConsumerConfig}). Prints `ready`
 * on stdout once subscribed; closes cleanly on SIGTERM.
 */
import { openSync, writeSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { createBus, type DedupStore, loadAdapter } from '@wharf/core';
import { ackBeforeHandler } from './ack-early.js';
import { effectIds } from './log.js';

/** What the parent tells the consumer child. */
export interface ConsumerConfig {
  readonly url: string;
  readonly channel: string;
  readonly group: string;
  readonly log: string;
  readonly concurrency: number;
  readonly handlerMs: number;
  readonly adapterOptions: Record<string, unknown>;
  readonly ackBeforeHandler: boolean;
}

const config = JSON.parse(process.env.WHARF_CHAOS_CONSUMER ?? '{}') as ConsumerConfig;
const fd = openSync(config.log, 'a');
const done = effectIds(config.log);
const idOf = (key: string): string => key.slice(key.indexOf('\u0000') + 1);

// The dedup store reads "done" from the effect lines: a delivery is a duplicate exactly when its
// effect was recorded, whichever consumer process recorded it.
const dedup: DedupStore = {
  has(_group, key) {
    const id = idOf(key);
    writeSync(fd, `D ${id} ${Date.now()}\n`);
    return done.has(id);
  },
  add() {
    // The handler's effect line already marked it done.
  },
};

const logger = {
  debug: () => undefined,
  info: (message: string) => process.stderr.write(`[consumer] ${message}\n`),
  warn: (message: string, fields?: unknown) =>
    process.stderr.write(`[consumer] WARN ${message} ${fields ? JSON.stringify(fields) : ''}\n`),
  error: (message: string, fields?: unknown) =>
    process.stderr.write(
      `[consumer] ERROR ${message} ${fields ? JSON.stringify(fields, (_k, v) => (v instanceof Error ? `${v.name}: ${v.message}` : v)) : ''}\n`,
    ),
};

const adapter = config.ackBeforeHandler
  ? ackBeforeHandler(await loadAdapter({ url: config.url, logger, ...config.adapterOptions }))
  : undefined;
const bus = createBus({
  url: config.url,
  adapterOptions: config.adapterOptions,
  dedup,
  logger,
  ...(adapter ? { adapter } : {}),
});

await bus.subscribe(config.channel, { group: config.group, concurrency: config.concurrency }, async (event) => {
  if (config.handlerMs > 0) await sleep(config.handlerMs);
  done.add(event.id);
  writeSync(fd, `E ${event.id} ${Date.now()}\n`);
});
process.stdout.write('ready\n');

process.once('SIGTERM', () => {
  void bus.close().finally(() => process.exit(0));
});
