import type { Delivery, RetryInstruction } from './adapter.js';
import { type DeadLetterReason, deadLetterInfo } from './dead-letter.js';
import type { DedupStore } from './dedup.js';
import { type CloudEvent, decodeEvent, type EventInput } from './envelope.js';
import { ContractViolationError, describeError, NonRetryableError, UndecodableMessageError } from './errors.js';
import type { Incident, IncidentKind, IncidentSink } from './incident.js';
import type { HandleScope, Instrumentation, Settlement } from './instrumentation.js';
import type { Logger } from './logger.js';
import { type NormalizedRetryPolicy, retryDelay } from './policy.js';
import type { Stats } from './stats.js';

/** What a handler gets besides the event. */
export interface HandlerContext {
  readonly channel: string;
  readonly group: string;
  /** 1-based; `attempt === maxAttempts` is the last try. */
  readonly attempt: number;
  readonly maxAttempts: number;
  /** Aborts when the bus shuts down mid-handler: stop work; the event is redelivered later. */
  readonly signal: AbortSignal;
  /** Dead-letters this event at once with `reason` (throws; nothing after it runs). */
  deadLetter(reason: string): never;
  /**
   * Publishes an event caused by this one: `causationid` is this event's id, and `correlationid`,
   * `traceparent` and `tracestate` carry over unless given, so a whole saga can be followed.
   */
  publish<T>(channel: string, input: EventInput<T>): Promise<CloudEvent<T>>;
}

/** How settlement reports outcomes, for metrics and tracing. */
export interface BusObserver {
  /** An event was settled; `handlerMs` is 0 when the handler did not run. */
  onSettled?(
    outcome: SettleOutcome,
    info: { channel: string; group: string; type: string | undefined; attempt: number; handlerMs: number },
  ): void;
  /** Events were accepted by the broker. */
  onPublished?(channel: string, count: number, ms: number): void;
  /** An event left the normal path (already logged as an error and counted in `stats().incidents`). */
  onIncident?(incident: Incident): void;
}

export type SettleOutcome = 'acked' | 'retried' | 'dead-lettered' | 'released' | 'duplicate' | 'discarded';

/** Handles one event. Resolve to acknowledge; throw to retry (or `NonRetryableError` to dead-letter). */
export type Handler<T = unknown> = (event: CloudEvent<T>, context: HandlerContext) => unknown;

/** Handlers by CloudEvents `type`; an event of a type not listed is dead-lettered as `no-handler`. */
export type HandlerMap = Readonly<Record<string, Handler>>;

/** Thrown for an event whose type has no handler in a {@link HandlerMap}. */
export class NoHandlerError extends Error {
  override readonly name = 'NoHandlerError';
}

/** Turns a handler map into one handler. */
export function dispatchByType(handlers: HandlerMap): Handler {
  const table = new Map(Object.entries(handlers));
  const known = [...table.keys()].join(', ');
  return (event, context) => {
    const handler = table.get(event.type);
    if (!handler) throw new NoHandlerError(`no handler for event type "${event.type}" (handled: ${known})`);
    return handler(event, context);
  };
}

/** Checks events against a contract; throws `ContractViolationError`. */
export interface EventValidator {
  validate(direction: 'publish' | 'consume', channel: string, event: CloudEvent): void;
}

/** Everything the settlement of one subscription needs. */
export interface ConsumerSetup {
  readonly channel: string;
  readonly group: string;
  readonly policy: NormalizedRetryPolicy;
  readonly handler: Handler;
  readonly deadLetter: boolean;
  readonly dedup: DedupStore | undefined;
  readonly validator: EventValidator | undefined;
  readonly logger: Logger;
  readonly stats: Stats;
  /** Publishes an event `cause` caused (`ctx.publish`). */
  readonly publish: <T>(channel: string, input: EventInput<T>, cause: CloudEvent) => Promise<CloudEvent<T>>;
  readonly observer: BusObserver | undefined;
  /** Metrics and tracing hooks, combined into one; undefined costs nothing per event. */
  readonly instrumentation?: Instrumentation | undefined;
  /** The adapter's name, for instrumentation (`messaging.system`). */
  readonly system?: string | undefined;
  readonly incident: IncidentSink;
  /** This group's events being handled in this process; set when dedup is on. */
  readonly inflight?: InFlight | undefined;
  /** Aborted when the bus shuts down. */
  readonly shutdown: Shutdown;
}

function caused<T>(cause: CloudEvent, input: EventInput<T>): EventInput<T> {
  const out: EventInput<T> = { ...input, causationid: input.causationid ?? cause.id };
  const correlation = input.correlationid ?? cause.correlationid ?? cause.id;
  out.correlationid = correlation;
  if (input.traceparent === undefined && cause.traceparent !== undefined) out.traceparent = cause.traceparent;
  if (input.tracestate === undefined && cause.tracestate !== undefined) out.tracestate = cause.tracestate;
  return out;
}

/**
 * The context a handler gets: one object per delivery with its methods on the prototype, rather
 * than an object literal and a closure per delivery. `publish` is built only when it is read.
 */
class DeliveryContext implements HandlerContext {
  readonly #setup: ConsumerSetup;
  readonly #event: CloudEvent;
  readonly channel: string;
  readonly group: string;
  readonly attempt: number;
  readonly maxAttempts: number;
  readonly signal: AbortSignal;

  constructor(setup: ConsumerSetup, event: CloudEvent, attempt: number) {
    this.#setup = setup;
    this.#event = event;
    this.channel = setup.channel;
    this.group = setup.group;
    this.attempt = attempt;
    this.maxAttempts = setup.policy.maxAttempts;
    this.signal = setup.shutdown.signal;
  }

  deadLetter(reason: string): never {
    throw new NonRetryableError(reason);
  }

  // A getter, so `const { publish } = context` keeps working.
  get publish(): <T>(channel: string, input: EventInput<T>) => Promise<CloudEvent<T>> {
    const setup = this.#setup;
    const event = this.#event;
    return (channel, input) => setup.publish(channel, caused(event, input), event);
  }
}

/** What settlement knows about a delivery, for stats, the observer and instrumentation. */
interface Trace {
  type: string | undefined;
  attempt: number;
  handlerMs: number;
  event: CloudEvent | undefined;
  reason: DeadLetterReason | undefined;
  error: unknown;
  retry: RetryInstruction | undefined;
  scope: HandleScope | undefined;
}

const COUNTERS: Record<SettleOutcome, 'acked' | 'retried' | 'deadLettered' | 'released' | 'duplicates' | 'discarded'> =
  {
    acked: 'acked',
    retried: 'retried',
    'dead-lettered': 'deadLettered',
    released: 'released',
    duplicate: 'duplicates',
    discarded: 'discarded',
  };

function note(setup: ConsumerSetup, outcome: SettleOutcome, trace: Trace): void {
  setup.stats[COUNTERS[outcome]]++;
  if (setup.instrumentation !== undefined) instrumentSettlement(setup, setup.instrumentation, outcome, trace);
  if (setup.observer?.onSettled === undefined) return;
  try {
    const { type, attempt, handlerMs } = trace;
    setup.observer.onSettled(outcome, { channel: setup.channel, group: setup.group, type, attempt, handlerMs });
  } catch (error) {
    setup.logger.error(`[wharf] [core] the observer threw on ${setup.channel}/${setup.group}`, {
      error: describeError(error).message,
    });
  }
}

/** Hands a settlement to the handler's scope, then to `settled` (both guarded by `combineInstrumentations`). */
function instrumentSettlement(
  setup: ConsumerSetup,
  instrumentation: Instrumentation,
  outcome: SettleOutcome,
  trace: Trace,
): void {
  const settlement: Settlement = {
    system: setup.system ?? 'unknown',
    channel: setup.channel,
    group: setup.group,
    outcome,
    attempt: trace.attempt,
    event: trace.event,
    handlerMs: trace.handlerMs,
    reason: trace.reason,
    error: trace.error,
    retry: trace.retry,
  };
  trace.scope?.end?.(settlement);
  instrumentation.settled?.(settlement);
}

function reportIncident(
  setup: ConsumerSetup,
  kind: IncidentKind,
  eventId: string | undefined,
  message: string,
  error: unknown,
): void {
  setup.incident({ kind, component: 'core', channel: setup.channel, group: setup.group, eventId, message, error });
}

/** Records a handled event in the dedup store; a store failure is an incident, the event is still acked. */
async function remember(setup: ConsumerSetup, dedupKey: string, eventId: string): Promise<void> {
  try {
    const added = setup.dedup?.add(setup.group, dedupKey);
    if (added !== undefined) await added;
  } catch (error) {
    // The effect happened: ack it. Only a later redelivery of this event would run it again.
    reportIncident(
      setup,
      'other',
      eventId,
      'the dedup store could not record the handled event; it is acked, and a redelivery would run it again',
      describeError(error).message,
    );
  }
}

/**
 * Dedup keys of a group's events being handled in this process. The value is `undefined` until a
 * second delivery of the same event waits: then it holds the waiters (no allocation per event).
 */
export type InFlight = Map<string, Array<() => void> | undefined>;

function waitFor(inflight: InFlight, key: string): Promise<void> {
  return new Promise((resolve) => {
    const waiters = inflight.get(key);
    if (waiters === undefined) inflight.set(key, [resolve]);
    else waiters.push(resolve);
  });
}

function finished(inflight: InFlight, key: string): void {
  const waiters = inflight.get(key);
  inflight.delete(key);
  if (waiters !== undefined) for (const wake of waiters) wake();
}

/** Gives an event back for redelivery after a failure of the bus's own machinery, never silently. */
async function giveBack(
  setup: ConsumerSetup,
  delivery: Delivery,
  what: string,
  error: unknown,
  eventId: string,
  trace: Trace,
): Promise<void> {
  reportIncident(
    setup,
    'settle-failed',
    eventId,
    `${what}; the event is released for redelivery`,
    describeError(error).message,
  );
  await safely(delivery, 'release', setup, eventId);
  note(setup, 'released', trace);
}

/** The one place where a handler's outcome becomes ack, retry, dead letter or release. */
export async function settle(setup: ConsumerSetup, delivery: Delivery): Promise<void> {
  const { stats, logger, channel, group } = setup;
  const trace: Trace = {
    type: undefined,
    attempt: delivery.attempt,
    handlerMs: 0,
    event: undefined,
    reason: undefined,
    error: undefined,
    retry: undefined,
    scope: undefined,
  };
  stats.delivered++;
  if (setup.shutdown.aborted) {
    await safely(delivery, 'release', setup, undefined);
    return note(setup, 'released', trace);
  }

  let event: CloudEvent;
  try {
    if (!delivery.decoded.ok) throw delivery.decoded.error;
    event = decodeEvent(delivery.decoded.message);
  } catch (error) {
    const cause =
      error instanceof UndecodableMessageError
        ? error
        : new UndecodableMessageError('consumer', describeError(error).message, { cause: error });
    return deadLetter(setup, delivery, 'undecodable', cause, 0, trace, undefined);
  }
  trace.type = event.type;
  trace.event = event;

  try {
    setup.validator?.validate('consume', channel, event);
  } catch (error) {
    if (error instanceof ContractViolationError)
      return deadLetter(setup, delivery, 'invalid', error, 0, trace, event.id);
    return giveBack(setup, delivery, 'the contract validator threw', error, event.id, trace);
  }

  // join, not +: it copies the characters into one new string. A concatenation keeps references to
  // its parts, and an adapter's attribute values may be slices of a whole header block (NATS), so
  // each key a store keeps held ~250 bytes more (a 52 MB heap at 100k keys instead of 20).
  const dedupKey = [event.source, event.id].join('\u0000');
  const inflight = setup.inflight;
  if (inflight !== undefined) {
    // A second delivery of an event this process is still handling (redelivered because the first
    // one's channel died) waits for the first: run at once, both would pass the store before either
    // recorded it, and the effect would happen twice.
    while (inflight.has(dedupKey)) await waitFor(inflight, dedupKey);
  }
  // Stores may answer synchronously (the memory one does): skip the await then, it costs a tick per event.
  let seen: boolean | Promise<boolean> | undefined;
  try {
    seen = setup.dedup?.has(group, dedupKey);
    if (seen !== undefined && seen !== true && seen !== false) seen = await seen;
  } catch (error) {
    return giveBack(setup, delivery, 'the dedup store could not be read', error, event.id, trace);
  }
  if (seen === true) {
    await safely(delivery, 'ack', setup, event.id);
    return note(setup, 'duplicate', trace);
  }

  inflight?.set(dedupKey, undefined);
  let outcome: Outcome;
  try {
    const context = new DeliveryContext(setup, event, delivery.attempt);
    const scope = setup.instrumentation?.handle?.({
      system: setup.system ?? 'unknown',
      channel,
      group,
      event,
      attempt: delivery.attempt,
      maxAttempts: setup.policy.maxAttempts,
    });
    trace.scope = scope;
    const started = performance.now();
    const raced =
      scope?.run === undefined
        ? raceShutdown(setup.shutdown, setup.handler, event, context)
        : scope.run(() => raceShutdown(setup.shutdown, setup.handler, event, context));
    outcome = raced instanceof Promise ? await raced : raced;
    trace.handlerMs = performance.now() - started;
    stats.handlerMs += trace.handlerMs;
    scope?.handled?.({
      error: 'ok' in outcome && !outcome.ok ? outcome.error : undefined,
      aborted: 'aborted' in outcome,
      durationMs: trace.handlerMs,
    });
    if ('ok' in outcome && outcome.ok) await remember(setup, dedupKey, event.id);
  } finally {
    if (inflight !== undefined) finished(inflight, dedupKey);
  }

  if ('aborted' in outcome) {
    // Interrupted by shutdown: neither acked nor dead-lettered, so the broker redelivers it.
    await safely(delivery, 'release', setup, event.id);
    return note(setup, 'released', trace);
  }
  if (outcome.ok) {
    // `safely` inlined: this is the path of nearly every event.
    try {
      await delivery.ack();
    } catch (error) {
      settleFailed(setup, 'ack', error, event.id);
    }
    return note(setup, 'acked', trace);
  }

  const { error } = outcome;
  trace.error = error;
  stats.failures++;
  const attempts = delivery.attempt;
  const id = event.id;
  if (error instanceof NonRetryableError)
    return deadLetter(setup, delivery, 'non-retryable', error, attempts, trace, id);
  if (error instanceof ContractViolationError)
    return deadLetter(setup, delivery, 'invalid', error, attempts, trace, id);
  if (error instanceof NoHandlerError) return deadLetter(setup, delivery, 'no-handler', error, attempts, trace, id);
  if (attempts >= setup.policy.maxAttempts) {
    return deadLetter(setup, delivery, 'retries-exhausted', error, attempts, trace, id);
  }
  const instruction = {
    attempt: attempts + 1,
    tierMs: setup.policy.delays[Math.min(attempts - 1, setup.policy.delays.length - 1)] ?? 0,
    delayMs: retryDelay(setup.policy, attempts),
    firstFailureAt: delivery.firstFailureAt ?? new Date().toISOString(),
  };
  logger.debug(
    `[wharf] handler failed on ${channel}/${group}, retry ${instruction.attempt} in ${instruction.delayMs} ms`,
    {
      id: event.id,
      error: describeError(error).message,
    },
  );
  try {
    await delivery.retry(instruction);
    trace.retry = instruction;
    note(setup, 'retried', trace);
  } catch (retryError) {
    reportIncident(
      setup,
      'settle-failed',
      id,
      `could not schedule retry ${instruction.attempt}; the event is released for redelivery`,
      describeError(retryError).message,
    );
    await safely(delivery, 'release', setup, id);
    note(setup, 'released', trace);
  }
}

async function deadLetter(
  setup: ConsumerSetup,
  delivery: Delivery,
  reason: DeadLetterReason,
  error: unknown,
  attempts: number,
  trace: Trace,
  eventId: string | undefined,
): Promise<void> {
  const { channel, group, logger, stats } = setup;
  trace.reason = reason;
  trace.error = error;
  if (!setup.deadLetter) {
    logger.error(`[wharf] discarding an event on ${channel}/${group} (${reason}): dead-lettering is turned off`, {
      ...(eventId === undefined ? {} : { eventId }),
      error: describeError(error).message,
    });
    await safely(delivery, 'ack', setup, eventId);
    return note(setup, 'discarded', trace);
  }
  const info = deadLetterInfo({ reason, error, channel, group, attempts, firstFailureAt: delivery.firstFailureAt });
  try {
    await delivery.deadLetter(info);
    note(setup, 'dead-lettered', trace);
    logger.warn(`[wharf] dead-lettered an event on ${channel}/${group}: ${reason}`, {
      ...(eventId === undefined ? {} : { eventId }),
      error: info.errorMessage,
    });
  } catch (writeError) {
    // The original stays unsettled: losing it would be worse than handling it again.
    stats.deadLetterFailures++;
    reportIncident(
      setup,
      'dead-letter-failed',
      eventId,
      `the dead-letter write (${reason}) failed; the event is released for redelivery`,
      describeError(writeError).message,
    );
    await safely(delivery, 'release', setup, eventId);
    note(setup, 'released', trace);
  }
}

async function safely(
  delivery: Delivery,
  what: 'ack' | 'release',
  setup: ConsumerSetup,
  eventId: string | undefined,
): Promise<void> {
  try {
    await delivery[what]();
  } catch (error) {
    settleFailed(setup, what, error, eventId);
  }
}

function settleFailed(
  setup: ConsumerSetup,
  what: 'ack' | 'release',
  error: unknown,
  eventId: string | undefined,
): void {
  // A failed settlement leaves the message with the broker, which redelivers it: at-least-once holds.
  reportIncident(
    setup,
    'settle-failed',
    eventId,
    `${what} failed; the broker will redeliver the event`,
    describeError(error).message,
  );
}

/**
 * Aborts once for a whole subscription and tells every running handler through one listener,
 * rather than one AbortController and listener per delivery on the hot path.
 */
export class Shutdown {
  readonly #controller = new AbortController();
  readonly #watchers = new Set<() => void>();
  /** Read for every delivery: a field, not the signal's getter. */
  #aborted = false;

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  get aborted(): boolean {
    return this.#aborted;
  }

  abort(reason?: unknown): void {
    this.#aborted = true;
    this.#controller.abort(reason);
    for (const watcher of this.#watchers) watcher();
    this.#watchers.clear();
  }

  watch(watcher: () => void): () => void {
    this.#watchers.add(watcher);
    return () => this.#watchers.delete(watcher);
  }
}

type Outcome = { ok: true } | { ok: false; error: unknown } | { aborted: true };

const OK: Outcome = Object.freeze({ ok: true });

function raceShutdown(
  shutdown: Shutdown,
  handler: Handler,
  event: CloudEvent,
  context: HandlerContext,
): Outcome | Promise<Outcome> {
  if (shutdown.aborted) return { aborted: true };
  let result: unknown;
  try {
    result = handler(event, context);
  } catch (error) {
    return { ok: false, error };
  }
  // A synchronous handler has finished already: no promise, no shutdown race.
  if (typeof (result as PromiseLike<unknown> | undefined)?.then !== 'function') return OK;
  return new Promise((resolve) => {
    const unwatch = shutdown.watch(() => resolve({ aborted: true }));
    (result as PromiseLike<unknown>).then(
      () => {
        unwatch();
        // Work that finished is acked even if shutdown began meanwhile: redoing it gains nothing.
        resolve(OK);
      },
      (error: unknown) => {
        unwatch();
        resolve(shutdown.aborted ? { aborted: true } : { ok: false, error });
      },
    );
  });
}
