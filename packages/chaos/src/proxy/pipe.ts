import type { Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { DataFault } from './fault.js';

/** Above this many queued bytes the reading side is paused (a throttled link must not buffer without bound). */
const HIGH_WATER = 1 << 20;

/**
 * One direction of a proxied connection. Chunks are queued in order and forwarded by one pump,
 * which applies the direction's fault as it was when the chunk arrived (latency, blackhole) or
 * when it is sent (slicer, throttle), so a fault switched at run time takes effect at once.
 */
export class Pipe {
  readonly #queue: { chunk: Buffer; due: number }[] = [];
  #queued = 0;
  #pumping = false;
  #lastDue = 0;
  #closed = false;
  /** Bytes forwarded and swallowed, for tests and reports. */
  forwarded = 0;
  dropped = 0;

  constructor(
    private readonly from: Socket,
    private readonly to: Socket,
    private readonly fault: () => DataFault,
    private readonly random: () => number,
  ) {
    from.on('data', (chunk: Buffer) => this.#receive(chunk));
  }

  close(): void {
    this.#closed = true;
    this.#queue.length = 0;
  }

  #receive(chunk: Buffer): void {
    const fault = this.fault();
    if (fault.kind === 'blackhole') {
      this.dropped += chunk.length;
      return;
    }
    let due = 0;
    if (fault.kind === 'latency') {
      const jitter = fault.jitterMs === 0 ? 0 : (this.random() * 2 - 1) * fault.jitterMs;
      // Order is kept: a chunk never overtakes the one before it, whatever its jitter.
      due = Math.max(this.#lastDue, Date.now() + Math.max(0, fault.latencyMs + jitter));
      this.#lastDue = due;
    }
    this.#queue.push({ chunk, due });
    this.#queued += chunk.length;
    if (this.#queued > HIGH_WATER) this.from.pause();
    void this.#pump();
  }

  async #pump(): Promise<void> {
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      while (this.#queue.length > 0 && !this.#closed) {
        const item = this.#queue[0];
        if (item === undefined) break;
        const wait = item.due - Date.now();
        if (wait > 0) await sleep(wait);
        await this.#send(item.chunk);
        this.#queue.shift();
        this.#queued -= item.chunk.length;
        if (this.#queued <= HIGH_WATER / 2 && this.from.isPaused()) this.from.resume();
      }
    } finally {
      this.#pumping = false;
    }
  }

  async #send(chunk: Buffer): Promise<void> {
    const fault = this.fault();
    if (fault.kind === 'blackhole') {
      this.dropped += chunk.length;
      return;
    }
    if (fault.kind === 'slicer') {
      for (let i = 0; i < chunk.length && !this.#closed; i++) {
        await this.#write(chunk.subarray(i, i + 1));
        // A separate turn per byte, so each byte leaves as its own segment (noDelay is set).
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
      return;
    }
    if (fault.kind === 'throttle') {
      const slice = Math.max(1, Math.floor(fault.bytesPerSecond / 20));
      for (let i = 0; i < chunk.length && !this.#closed; i += slice) {
        const part = chunk.subarray(i, i + slice);
        await this.#write(part);
        await sleep((part.length / fault.bytesPerSecond) * 1000);
      }
      return;
    }
    await this.#write(chunk);
  }

  #write(chunk: Buffer): Promise<void> {
    if (this.#closed || this.to.destroyed) return Promise.resolve();
    this.forwarded += chunk.length;
    if (this.to.write(chunk)) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        this.to.off('drain', done);
        this.to.off('close', done);
        resolve();
      };
      this.to.once('drain', done);
      this.to.once('close', done);
    });
  }
}
