import {
  ContractViolationError,
  type DeadLetterFilter,
  DeadLetterQueue,
  type DeadLetterTarget,
  redactUrl,
  UnknownDeadLetterError,
  UnknownGroupError,
} from '@wharf/core';
import type { ResolvedConsoleOptions } from './options.js';

/** An answer to an API request: a status and a JSON body. */
export interface Reply {
  readonly status: number;
  readonly body: unknown;
}

/** One group's row in the overview, or why it could not be read. */
export interface OverviewRow {
  readonly channel: string;
  readonly group: string;
  readonly ready?: number;
  readonly inFlight?: number;
  readonly delayed?: number;
  readonly deadLetters?: number;
  readonly consumers?: number;
  /**
   * How fast the events waiting for the group (ready, in flight and delayed) changed since the
   * previous reading, per second: negative while the group drains its backlog, positive while it
   * falls behind. Absent on the first reading. A broker outside the process only shows what waits,
   * not what was handled, so this is the rate an operator (or an autoscaler) acts on.
   */
  readonly rate?: number;
  readonly error?: string;
}

/** A group's waiting events at one reading. */
export interface BacklogReading {
  readonly at: number;
  readonly waiting: number;
}

/** Events per second (one decimal) by which the waiting events changed between two readings. */
export function backlogRate(previous: BacklogReading | undefined, current: BacklogReading): number | undefined {
  if (previous === undefined || current.at <= previous.at) return undefined;
  return Math.round(((current.waiting - previous.waiting) * 10_000) / (current.at - previous.at)) / 10;
}

/**
 * What the page asks of the broker. Operations run one at a time: on RabbitMQ a listing holds the
 * dead letters it read until it ends, so a replay running beside it would not see them.
 */
export class ConsoleApi {
  readonly #options: ResolvedConsoleOptions;
  readonly #queue: DeadLetterQueue;
  readonly #secrets: string[];
  /** The previous reading of each group (`channel/group`), for its rate. */
  readonly #readings = new Map<string, BacklogReading>();
  #serial: Promise<unknown> = Promise.resolve();

  constructor(options: ResolvedConsoleOptions) {
    this.#options = options;
    this.#queue = new DeadLetterQueue(options.bus, { scanLimit: options.scanLimit });
    this.#secrets = secretsOf(options.bus.url);
  }

  /** The broker URL without credentials. */
  get broker(): string {
    return redactUrl(this.#options.bus.url);
  }

  /** Backlog of every group; throws when the broker cannot be reached. */
  overview(): Promise<{ broker: string; at: string; groups: OverviewRow[] }> {
    return this.#run(async () => {
      const groups: OverviewRow[] = [];
      for (const { channel, group } of this.#options.targets) {
        try {
          const b = await this.#options.bus.backlog(channel, group);
          const reading = { at: Date.now(), waiting: b.ready + b.inFlight + b.delayed };
          const key = `${channel}/${group}`;
          const rate = backlogRate(this.#readings.get(key), reading);
          this.#readings.set(key, reading);
          groups.push({ channel, group, ...b, ...(rate === undefined ? {} : { rate }) });
        } catch (error) {
          if (!(error instanceof UnknownGroupError)) throw error;
          groups.push({ channel, group, error: 'not declared on the broker yet' });
        }
      }
      return { broker: this.broker, at: new Date().toISOString(), groups };
    });
  }

  list(query: URLSearchParams): Promise<Reply> {
    const filter: DeadLetterFilter = {
      reasons: many(query, 'reason'),
      errorTypes: many(query, 'errorType'),
      eventTypes: many(query, 'eventType'),
      search: query.get('search') || undefined,
    };
    return this.#reply(async () => ({
      broker: this.broker,
      ...(await this.#queue.list(this.#targets(query), filter)),
    }));
  }

  show(key: string): Promise<Reply> {
    return this.#reply(async () => {
      const [entry] = await this.#queue.show(this.#targetsOfKey(key), key);
      return { deadLetter: entry, allowEdit: this.#options.allowEdit };
    });
  }

  replay(body: Record<string, unknown>): Promise<Reply> {
    return this.#reply(async () => {
      const { targets, filter } = this.#selection(body);
      return this.#queue.replay(targets, filter);
    });
  }

  purge(body: Record<string, unknown>): Promise<Reply> {
    if (body.confirm !== 'purge') {
      return Promise.resolve({ status: 400, body: { error: 'purging needs the typed confirmation "purge"' } });
    }
    return this.#reply(async () => {
      const { targets, filter } = this.#selection(body);
      return this.#queue.purge(targets, filter);
    });
  }

  edit(body: Record<string, unknown>): Promise<Reply> {
    if (!this.#options.allowEdit) {
      return Promise.resolve({
        status: 403,
        body: { error: 'edit-and-replay is off: start the console with --allow-edit' },
      });
    }
    const key = body.key;
    if (typeof key !== 'string' || !('data' in body)) {
      return Promise.resolve({ status: 400, body: { error: 'edit needs a key and data' } });
    }
    return this.#reply(async () => {
      const target = this.#targetsOfKey(key)[0] as DeadLetterTarget;
      const sent = await this.#queue.editAndReplay(target, key, body.data);
      return { sent };
    });
  }

  /** Runs after every earlier operation; one failing does not stop the next. */
  #run<T>(work: () => Promise<T>): Promise<T> {
    const next = this.#serial.then(work, work);
    this.#serial = next.catch(() => undefined);
    return next;
  }

  async #reply(work: () => Promise<unknown>): Promise<Reply> {
    try {
      return { status: 200, body: await this.#run(work) };
    } catch (error) {
      if (error instanceof UnknownDeadLetterError) return { status: 404, body: { error: this.scrub(error.message) } };
      if (error instanceof ContractViolationError || error instanceof BadRequest) {
        return { status: 422, body: { error: this.scrub(error.message) } };
      }
      return { status: 503, body: { error: this.scrub(error instanceof Error ? error.message : String(error)) } };
    }
  }

  /** Removes anything of the broker URL's credentials from a message bound for the page. */
  scrub(message: string): string {
    let out = message;
    for (const secret of this.#secrets) out = out.split(secret).join('***');
    return out;
  }

  /** `?channel=&group=` narrow the listing to one group. */
  #targets(query: URLSearchParams): DeadLetterTarget[] {
    const channel = query.get('channel');
    const group = query.get('group');
    return this.#options.targets.filter((t) => (!channel || t.channel === channel) && (!group || t.group === group));
  }

  #targetsOfKey(key: string): DeadLetterTarget[] {
    const [channel, group] = key.split('/');
    const target = this.#options.targets.find((t) => t.channel === channel && t.group === group);
    if (!target) throw new UnknownDeadLetterError([key], 'the groups this console shows');
    return [target];
  }

  /** `{ keys: [...] }` for a selection, `{ channel, group }` for a whole group. */
  #selection(body: Record<string, unknown>): { targets: DeadLetterTarget[]; filter: DeadLetterFilter } {
    const keys = body.keys;
    if (Array.isArray(keys) && keys.length > 0 && keys.every((k) => typeof k === 'string')) {
      const targets = this.#options.targets.filter((t) =>
        keys.some((k: string) => k.startsWith(`${t.channel}/${t.group}/`)),
      );
      if (targets.length === 0) throw new UnknownDeadLetterError(keys, 'the groups this console shows');
      return { targets, filter: { ids: keys } };
    }
    const target = this.#options.targets.find((t) => t.channel === body.channel && t.group === body.group);
    if (!target) throw new BadRequest('give keys, or the channel and group of a whole group this console shows');
    return { targets: [target], filter: {} };
  }
}

class BadRequest extends Error {}

function many(query: URLSearchParams, name: string): string[] | undefined {
  const values = query.getAll(name).filter((v) => v !== '');
  return values.length > 0 ? values : undefined;
}

/** The credentials in a broker URL, as they may appear in an error message. */
function secretsOf(url: string): string[] {
  const match = /^[a-z0-9+.-]+:\/\/([^@/]*)@/i.exec(url);
  if (!match?.[1]) return [];
  const userinfo = match[1];
  const [user, password] = userinfo.split(':');
  return [url, userinfo, decodeURIComponent(userinfo), password, password && decodeURIComponent(password), user]
    .filter((s): s is string => typeof s === 'string' && s.length >= 3)
    .sort((a, b) => b.length - a.length);
}
