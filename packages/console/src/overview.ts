import type { ServerResponse } from 'node:http';
import type { ConsoleApi } from './api.js';

/**
 * Pushes the overview to open pages over server-sent events: read from the broker every `refreshMs`
 * while at least one page listens, and at once after an action. A read that fails sends a
 * `broker-error` event with the reason (credentials scrubbed), so the page says the broker is gone
 * instead of showing stale numbers; the next read that succeeds clears it.
 */
export class Overview {
  readonly #api: ConsoleApi;
  readonly #refreshMs: number;
  readonly #clients = new Set<ServerResponse>();
  #timer: NodeJS.Timeout | undefined;
  #reading = false;
  #closed = false;

  constructor(api: ConsoleApi, refreshMs: number) {
    this.#api = api;
    this.#refreshMs = refreshMs;
  }

  attach(res: ServerResponse): void {
    res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-store', Connection: 'keep-alive' });
    res.write(': wharf console\n\n');
    this.#clients.add(res);
    res.on('close', () => {
      this.#clients.delete(res);
      if (this.#clients.size === 0) this.#stop();
    });
    this.refreshSoon();
  }

  /** Reads again now (after an action), then on the usual period. */
  refreshSoon(): void {
    if (this.#closed || this.#clients.size === 0) return;
    this.#stop();
    void this.#tick();
  }

  close(): void {
    this.#closed = true;
    this.#stop();
    for (const res of this.#clients) res.end();
    this.#clients.clear();
  }

  #stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  async #tick(): Promise<void> {
    if (this.#reading) return;
    this.#reading = true;
    try {
      const overview = await this.#api.overview();
      this.#broadcast('overview', overview);
    } catch (error) {
      const message = this.#api.scrub(error instanceof Error ? error.message : String(error));
      this.#broadcast('broker-error', { broker: this.#api.broker, at: new Date().toISOString(), error: message });
    } finally {
      this.#reading = false;
    }
    if (!this.#closed && this.#clients.size > 0) {
      this.#stop();
      this.#timer = setTimeout(() => void this.#tick(), this.#refreshMs);
    }
  }

  #broadcast(event: string, data: unknown): void {
    const frame = `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
    for (const res of this.#clients) res.write(frame);
  }
}
