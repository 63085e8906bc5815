import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { HOST } from '../brokers/ports.js';
import { ProxyError } from '../errors.js';
import { dataFault, type Fault, seededRandom } from './fault.js';
import { Pipe } from './pipe.js';

/** Options of {@link startProxy}. */
export interface ProxyOptions {
  /** The loopback port to forward to (a broker's `proxyTarget`). */
  readonly target: number;
  /** The port to listen on; a free one by default. */
  readonly port?: number;
  /** Seed of the jitter and flapping intervals. Default 1. */
  readonly seed?: number;
}

/** Counters of a proxy, since it started. */
export interface ProxyStats {
  readonly connections: number;
  readonly open: number;
  readonly resets: number;
  readonly upstreamBytes: number;
  readonly downstreamBytes: number;
  readonly droppedBytes: number;
}

/** A TCP proxy on 127.0.0.1 whose fault can be switched at run time. */
export interface FaultProxy {
  readonly port: number;
  readonly target: number;
  /** The fault now in force. */
  readonly fault: Fault;
  /** Replaces the fault in force; takes effect on open connections at once. */
  set(fault: Fault): void;
  /** Removes every fault (`set({ kind: 'none' })`). */
  heal(): void;
  /** Resets (RST) every open connection now. */
  resetAll(): void;
  stats(): ProxyStats;
  /** Stops listening and destroys every connection; idempotent. */
  close(): Promise<void>;
}

interface Link {
  readonly client: Socket;
  readonly upstream: Socket;
  readonly pipes: Pipe[];
}

function reset(socket: Socket): void {
  if (socket.destroyed) return;
  // resetAndDestroy sends RST only on a connected socket; a pending one is just destroyed.
  if (socket.readyState === 'open' || socket.readyState === 'readOnly' || socket.readyState === 'writeOnly')
    socket.resetAndDestroy();
  else socket.destroy();
}

class TcpFaultProxy implements FaultProxy {
  readonly #links = new Set<Link>();
  readonly #random: () => number;
  #fault: Fault = { kind: 'none' };
  #flap: NodeJS.Timeout | undefined;
  #connections = 0;
  #resets = 0;
  #bytes = { up: 0, down: 0, dropped: 0 };
  #closed = false;

  constructor(
    private readonly server: Server,
    readonly port: number,
    readonly target: number,
    seed: number,
  ) {
    this.#random = seededRandom(seed);
    server.on('connection', (client) => this.#accept(client));
  }

  get fault(): Fault {
    return this.#fault;
  }

  set(fault: Fault): void {
    validate(fault);
    this.#fault = fault;
    if (this.#flap) clearTimeout(this.#flap);
    this.#flap = undefined;
    if (fault.kind === 'reset') this.resetAll();
    if (fault.kind === 'flapping') this.#scheduleFlap(fault.minMs ?? 1_000, fault.maxMs ?? 5_000);
  }

  heal(): void {
    this.set({ kind: 'none' });
  }

  resetAll(): void {
    for (const link of [...this.#links]) this.#reset(link);
  }

  stats(): ProxyStats {
    let up = this.#bytes.up;
    let down = this.#bytes.down;
    let dropped = this.#bytes.dropped;
    for (const link of this.#links) {
      up += link.pipes[0]?.forwarded ?? 0;
      down += link.pipes[1]?.forwarded ?? 0;
      dropped += (link.pipes[0]?.dropped ?? 0) + (link.pipes[1]?.dropped ?? 0);
    }
    return {
      connections: this.#connections,
      open: this.#links.size,
      resets: this.#resets,
      upstreamBytes: up,
      downstreamBytes: down,
      droppedBytes: dropped,
    };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#flap) clearTimeout(this.#flap);
    for (const link of [...this.#links]) {
      link.client.destroy();
      link.upstream.destroy();
    }
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  #scheduleFlap(minMs: number, maxMs: number): void {
    const delay = minMs + this.#random() * (maxMs - minMs);
    this.#flap = setTimeout(() => {
      this.resetAll();
      this.#scheduleFlap(minMs, maxMs);
    }, delay);
    this.#flap.unref();
  }

  #accept(client: Socket): void {
    this.#connections += 1;
    client.setNoDelay(true);
    const upstream = createConnection({ host: HOST, port: this.target });
    upstream.setNoDelay(true);
    const link: Link = { client, upstream, pipes: [] };
    link.pipes.push(
      new Pipe(client, upstream, () => dataFault(this.#fault, 'upstream'), this.#random),
      new Pipe(upstream, client, () => dataFault(this.#fault, 'downstream'), this.#random),
    );
    this.#links.add(link);
    // Errors are part of the job (resets, a killed broker): each side's end is mirrored on the other.
    const end = (): void => this.#forget(link);
    client.on('error', end);
    upstream.on('error', () => {
      if (this.#links.has(link)) reset(client);
      end();
    });
    client.on('close', () => {
      upstream.destroy();
      end();
    });
    upstream.on('close', () => {
      client.destroy();
      end();
    });
    if (this.#fault.kind === 'reset') this.#reset(link);
  }

  #reset(link: Link): void {
    this.#resets += 1;
    reset(link.client);
    reset(link.upstream);
    this.#forget(link);
  }

  #forget(link: Link): void {
    if (!this.#links.delete(link)) return;
    for (const pipe of link.pipes) pipe.close();
    this.#bytes.up += link.pipes[0]?.forwarded ?? 0;
    this.#bytes.down += link.pipes[1]?.forwarded ?? 0;
    this.#bytes.dropped += (link.pipes[0]?.dropped ?? 0) + (link.pipes[1]?.dropped ?? 0);
  }
}

function validate(fault: Fault): void {
  const bad = (what: string): never => {
    throw new ProxyError(`invalid ${fault.kind} fault: ${what}`);
  };
  if (fault.kind === 'latency' && (!(fault.latencyMs >= 0) || !((fault.jitterMs ?? 0) >= 0)))
    bad('latencyMs and jitterMs must be >= 0');
  if (fault.kind === 'throttle' && !(fault.bytesPerSecond >= 1)) bad('bytesPerSecond must be >= 1');
  if (fault.kind === 'flapping' && !((fault.minMs ?? 1_000) > 0 && (fault.maxMs ?? 5_000) >= (fault.minMs ?? 1_000)))
    bad('need 0 < minMs <= maxMs');
}

/**
 * Starts a fault proxy on 127.0.0.1 in front of a loopback port. It passes traffic until a fault
 * is `set`.
 *
 * @example
 * const proxy = await startProxy({ target: broker.proxyTarget });
 * proxy.set({ kind: 'blackhole', direction: 'downstream' }); // acknowledgements are lost
 * proxy.heal();
 * await proxy.close();
 */
export function startProxy(options: ProxyOptions): Promise<FaultProxy> {
  return new Promise((resolve, reject) => {
    const server = createServer({ noDelay: true });
    server.once('error', (error) =>
      reject(
        new ProxyError(`cannot listen on 127.0.0.1:${options.port ?? 0} for a proxy to ${options.target}`, {
          cause: error,
        }),
      ),
    );
    server.listen(options.port ?? 0, HOST, () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      resolve(new TcpFaultProxy(server, port, options.target, options.seed ?? 1));
    });
  });
}
