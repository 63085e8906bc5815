import { readFileSync } from 'node:fs';
import type { DeliveryRecord } from '../checker/checker.js';

/**
 * The consumer's record, one line per event, written with a synchronous append so it survives a
 * kill -9 of the consumer (the page cache keeps it):
 * - `D <id> <ms>`: a delivery reached the bus (its dedup check);
 * - `E <id> <ms>`: the handler ran (the effect). The effect line is also the dedup record, so the
 *   effect and "done" are one write and a crash cannot separate them.
 */
export function parseConsumerLog(path: string): DeliveryRecord[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return [];
  }
  const deliveries: DeliveryRecord[] = [];
  const effects: { id: string; at: number }[] = [];
  for (const line of text.split('\n')) {
    const [tag, id, at] = line.split(' ');
    if (id === undefined || at === undefined) continue;
    if (tag === 'D') deliveries.push(record(id, Number(at), false));
    else if (tag === 'E') effects.push({ id, at: Number(at) });
  }
  // Each effect belongs to the latest delivery of its id before it.
  const byId = new Map<string, number[]>();
  deliveries.forEach((delivery, index) => {
    const key = `${delivery.producer}-${delivery.seq}`;
    byId.set(key, [...(byId.get(key) ?? []), index]);
  });
  for (const effect of effects) {
    const candidates = byId.get(effect.id) ?? [];
    let chosen: number | undefined;
    for (const index of candidates) {
      const delivery = deliveries[index];
      if (delivery !== undefined && delivery.at <= effect.at && !delivery.effect) chosen = index;
    }
    if (chosen === undefined) {
      deliveries.push({ ...record(effect.id, effect.at, true) });
      continue;
    }
    const delivery = deliveries[chosen];
    if (delivery !== undefined) deliveries[chosen] = { ...delivery, effect: true };
  }
  return deliveries;
}

function record(id: string, at: number, effect: boolean): DeliveryRecord {
  const dash = id.lastIndexOf('-');
  return { producer: id.slice(0, dash), seq: Number(id.slice(dash + 1)), at, effect };
}

/** The ids with an effect line, for a restarted consumer's dedup store. */
export function effectIds(path: string): Set<string> {
  const done = new Set<string>();
  try {
    for (const line of readFileSync(path, 'utf8').split('\n')) {
      if (line.startsWith('E ')) done.add(line.split(' ')[1] ?? '');
    }
  } catch {
    // No log yet: nothing done.
  }
  return done;
}
