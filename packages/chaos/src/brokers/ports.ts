import { readFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { ChaosTimeoutError } from '../errors.js';

/** Loopback only: every fault and private broker stays on this machine. */
export const HOST = '127.0.0.1';

/** The kernel's range for outgoing connections' source ports (Linux), or the usual default. */
function ephemeralRange(): [number, number] {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (low !== undefined && high !== undefined && Number.isInteger(low) && Number.isInteger(high)) return [low, high];
  } catch {
    // not Linux: fall through
  }
  return [32768, 60999];
}

const handedOut = new Set<number>();

function listensOn(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen(port, HOST, () => server.close(() => resolve(true)));
  });
}

/**
 * A free loopback port for a broker to listen on, chosen below the kernel's ephemeral range.
 * A port from `listen(0)` is an ephemeral one: between our check and the broker's bind (seconds for
 * a JVM) any outgoing connection on the machine may take it as its source port, and the broker then
 * dies at start-up on "address already in use" — seen as a private Kafka exiting during start-up
 * while other tests ran. Below the range only another listener can take it.
 */
export async function freePort(): Promise<number> {
  const [low] = ephemeralRange();
  const floor = 10_000;
  if (low - floor > 1_000) {
    for (let attempt = 0; attempt < 50; attempt++) {
      const candidate = floor + Math.floor(Math.random() * (low - floor));
      if (handedOut.has(candidate) || !(await listensOn(candidate))) continue;
      handedOut.add(candidate);
      return candidate;
    }
  }
  return kernelPort();
}

function kernelPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, HOST, () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Several distinct free ports (asked one after another while the previous ones are still held would be stricter; collisions are caught by the broker's own bind error). */
export async function freePorts(count: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < count) ports.add(await freePort());
  return [...ports];
}

/** Resolves true when a TCP connect to the port succeeds within `timeoutMs`. */
export function portOpen(port: number, timeoutMs = 1_000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: HOST, port });
    const done = (open: boolean): void => {
      socket.destroy();
      resolve(open);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** Polls until `check` resolves true, or throws a {@link ChaosTimeoutError} saying `what`. */
export async function waitUntil(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs: number,
  everyMs = 200,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      if (await check()) return;
    } catch (error) {
      last = error;
    }
    await sleep(everyMs);
  }
  throw new ChaosTimeoutError(`${what} did not happen within ${timeoutMs} ms`, { cause: last });
}
