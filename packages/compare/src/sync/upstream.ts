import {
  BrokenCircuitError,
  circuitBreaker,
  ExponentialBackoff,
  handleWhen,
  type IPolicy,
  type RetryPolicy,
  retry,
  SamplingBreaker,
  TaskCancelledError,
  TimeoutStrategy,
  timeout,
  wrap,
} from 'cockatiel';
import { Agent, request } from 'undici';
import { ATTEMPT_HEADER } from './payment.js';

/** How the order service calls inventory and payment: what a careful team would configure. */
export interface UpstreamPolicy {
  /** Per-attempt deadline. Default 2 s. */
  timeoutMs: number;
  /** Retries after the first attempt, on 503, timeouts and connection failures. Default 3 (the saga's 4 attempts). */
  retries: number;
  /** First backoff delay, doubled per retry up to 1 s, with jitter. Default 100 ms (the saga's first delay). */
  backoffMs: number;
  /** Failure share over {@link breakerWindowMs} that opens the circuit. Default 0.5. */
  breakerThreshold: number;
  breakerWindowMs: number;
  /** How long an open circuit fails fast before it lets one trial call through. Default 5 s. */
  halfOpenAfterMs: number;
}

export const DEFAULT_UPSTREAM: UpstreamPolicy = {
  timeoutMs: 2_000,
  retries: 3,
  backoffMs: 100,
  breakerThreshold: 0.5,
  breakerWindowMs: 5_000,
  halfOpenAfterMs: 5_000,
};

/** The upstream could not answer (refused, timed out, 503, or its circuit is open): the caller may try later. */
export class UpstreamUnavailableError extends Error {
  override readonly name = 'UpstreamUnavailableError';
}

/** The upstream answered with a failure no retry changes (a 4xx or 500). */
export class UpstreamFailedError extends Error {
  override readonly name = 'UpstreamFailedError';
  constructor(
    message: string,
    readonly status: number,
    readonly body: unknown,
  ) {
    super(message);
  }
}

/** One upstream service behind a keep-alive pool, a per-attempt timeout, retries with backoff and a circuit breaker. */
export class Upstream {
  readonly #agent: Agent;
  readonly #retry: RetryPolicy;
  /** Breaker around a per-attempt timeout: each retry is one attempt the breaker counts. */
  readonly #attempt: IPolicy;
  readonly #base: string;

  constructor(
    readonly name: string,
    base: string,
    policy: UpstreamPolicy = DEFAULT_UPSTREAM,
  ) {
    this.#base = base;
    this.#agent = new Agent({ keepAliveTimeout: 30_000, connections: 64, pipelining: 1 });
    const transient = handleWhen(
      (error) => error instanceof UpstreamUnavailableError || error instanceof TaskCancelledError,
    );
    // The breaker counts every attempt; an open circuit's BrokenCircuitError is not retried (fail fast).
    const breaker = circuitBreaker(transient, {
      halfOpenAfter: policy.halfOpenAfterMs,
      breaker: new SamplingBreaker({
        threshold: policy.breakerThreshold,
        duration: policy.breakerWindowMs,
        minimumRps: 5,
      }),
    });
    if (process.env.WHARF_COMPARE_DEBUG) {
      const log = (what: string) => process.stderr.write(`${new Date().toISOString()} [${name}] ${what}\n`);
      breaker.onBreak((reason) => log(`break ${'error' in reason ? String(reason.error) : 'value'}`));
      breaker.onHalfOpen(() => log('half-open'));
      breaker.onReset(() => log('reset'));
    }
    const retries = retry(transient, {
      maxAttempts: policy.retries,
      backoff: new ExponentialBackoff({ initialDelay: policy.backoffMs, maxDelay: 1_000 }),
    });
    this.#retry = retries;
    this.#attempt = wrap(breaker, timeout(policy.timeoutMs, TimeoutStrategy.Aggressive));
  }

  /** POSTs JSON; resolves with the 2xx body, or rejects with {@link UpstreamUnavailableError} / {@link UpstreamFailedError}. */
  async post<T>(path: string, body: unknown): Promise<T> {
    try {
      // The attempt number goes to the upstream (the sandbox gateway's flaky cards fail the first ones).
      return await this.#retry.execute(({ attempt }) =>
        this.#attempt.execute(async ({ signal }) => {
          let response: Awaited<ReturnType<typeof request>>;
          try {
            response = await request(new URL(path, this.#base), {
              method: 'POST',
              dispatcher: this.#agent,
              signal,
              headers: { 'content-type': 'application/json', [ATTEMPT_HEADER]: String(attempt + 1) },
              body: JSON.stringify(body),
            });
          } catch (error) {
            if (signal.aborted) throw error;
            throw new UpstreamUnavailableError(`${this.name} unreachable: ${(error as Error).message}`, {
              cause: error,
            });
          }
          const answer = (await response.body.json()) as T;
          if (response.statusCode === 503) throw new UpstreamUnavailableError(`${this.name} answered 503`);
          if (response.statusCode >= 300) {
            throw new UpstreamFailedError(`${this.name} answered ${response.statusCode}`, response.statusCode, answer);
          }
          return answer;
        }),
      );
    } catch (error) {
      if (error instanceof BrokenCircuitError) {
        throw new UpstreamUnavailableError(`${this.name}: circuit open, failing fast`, { cause: error });
      }
      if (error instanceof TaskCancelledError) {
        throw new UpstreamUnavailableError(`${this.name}: timed out`, { cause: error });
      }
      throw error;
    }
  }

  close(): Promise<void> {
    return this.#agent.close();
  }
}
