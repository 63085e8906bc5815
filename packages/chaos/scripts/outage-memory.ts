// Issue 13: during an outage the bus must not buffer without bound. A producer publishes 1 KiB events
// at a steady rate, without waiting for each (as a busy service does), into a private broker that is
// paused (SIGSTOP: connections stay open and writes pile up) or killed for the outage, then brought
// back. Every second it samples the process's RSS and heap, the bus's pending publishes and the
// outcomes so far, and prints them; at the end, what grew and whether publishing works again.
//
//   npx tsx --conditions wharf-source packages/chaos/scripts/outage-memory.ts \
//     [--broker nats|rabbitmq|kafka] [--fault pause|kill] [--outage 60] [--rate 1000]
//
// The broker is private (startBroker: free ports, its own data, destroyed at the end); the shared
// ones are never touched. Exits 1 when the bus held more than maxPendingPublishes events for the
// broker, a publish stayed unsettled past its deadline, or publishing did not recover.
import { parseArgs } from 'node:util';
import { type Bus, createBus } from '@wharf/core';
import { type BrokerKind, startBroker } from '../src/index.js';

const { values } = parseArgs({
  options: {
    broker: { type: 'string', default: 'nats' },
    fault: { type: 'string', default: 'pause' },
    outage: { type: 'string', default: '60' },
    rate: { type: 'string', default: '1000' },
  },
});
const kind = values.broker as BrokerKind;
const fault = values.fault === 'kill' ? 'kill' : 'pause';
const outageMs = Number(values.outage) * 1000;
const rate = Number(values.rate);
const MAX_PENDING = 10_000;
const PUBLISH_TIMEOUT_MS = 5_000;
const payload = 'x'.repeat(1024);
const mb = (bytes: number): string => (bytes / 2 ** 20).toFixed(1);
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

const broker = await startBroker(kind);
let bus: Bus | undefined;
let failed = false;
try {
  bus = createBus({
    url: broker.url,
    publishTimeoutMs: PUBLISH_TIMEOUT_MS,
    maxPendingPublishes: MAX_PENDING,
    logger: { debug() {}, info() {}, warn() {}, error() {} },
  });
  const channel = `outage-${Date.now().toString(36)}`;
  await bus.declare(channel, { groups: ['sink'] });
  const counts = { sent: 0, ok: 0, failed: 0, settledLate: 0 };
  const errors = new Map<string, number>();
  let maxPending = 0;
  let phase = 'before';
  let producing = true;
  const producer = (async () => {
    const started = Date.now();
    while (producing) {
      const due = Math.floor(((Date.now() - started) * rate) / 1000);
      while (counts.sent < due) {
        counts.sent++;
        const sentAt = Date.now();
        (bus as Bus).publish(channel, { type: 'outage.tick', data: { payload } }).then(
          () => {
            counts.ok++;
          },
          (error: Error) => {
            counts.failed++;
            errors.set(error.name, (errors.get(error.name) ?? 0) + 1);
            if (Date.now() - sentAt > PUBLISH_TIMEOUT_MS + 2_000) counts.settledLate++;
          },
        );
      }
      await sleep(10);
    }
  })();
  const rows: string[] = [];
  const sample = (): { rss: number; heap: number } => {
    const { rss, heapUsed } = process.memoryUsage();
    const pending = (bus as Bus).pendingPublishes;
    maxPending = Math.max(maxPending, pending);
    rows.push([phase, mb(rss), mb(heapUsed), pending, counts.sent, counts.ok, counts.failed].map(String).join('\t'));
    return { rss, heap: heapUsed };
  };
  const sampler = setInterval(sample, 1_000);
  await sleep(10_000);
  const before = sample();
  phase = 'outage';
  if (fault === 'pause') await broker.pause();
  else await broker.kill();
  const outageStarted = Date.now();
  let peak = before;
  while (Date.now() - outageStarted < outageMs) {
    await sleep(1_000);
    const now = sample();
    if (now.rss > peak.rss) peak = now;
  }
  const atEnd = sample();
  phase = 'after';
  if (fault === 'pause') await broker.resume();
  else await broker.start();
  const okBefore = counts.ok;
  await sleep(20_000);
  producing = false;
  await producer;
  clearInterval(sampler);
  const after = sample();
  const recovered = counts.ok > okBefore;
  console.log('phase\trss MB\theap MB\tpending\tsent\tok\tfailed');
  for (const row of rows) console.log(row);
  console.log(
    JSON.stringify({
      broker: kind,
      fault,
      outageS: outageMs / 1000,
      rate,
      rssMB: {
        beforeOutage: mb(before.rss),
        peakInOutage: mb(peak.rss),
        endOfOutage: mb(atEnd.rss),
        after: mb(after.rss),
      },
      heapMB: { beforeOutage: mb(before.heap), endOfOutage: mb(atEnd.heap) },
      maxPending,
      sent: counts.sent,
      ok: counts.ok,
      failed: counts.failed,
      errors: Object.fromEntries(errors),
      settledLate: counts.settledLate,
      recovered,
    }),
  );
  failed = maxPending > MAX_PENDING || counts.settledLate > 0 || !recovered;
} finally {
  await bus?.close().catch(() => undefined);
  await broker.destroy();
}
process.exit(failed ? 1 : 0);
