import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type FaultProxy, ProxyError, startProxy } from '../src/index.js';

// The proxy against a real TCP echo server on loopback (the proxy is what is under test here;
// the same proxy in front of real brokers is exercised by the chaos scenarios).
let server: Server;
let serverReceived: number;
let proxy: FaultProxy;
const clients: Socket[] = [];

beforeEach(async () => {
  serverReceived = 0;
  server = createServer((socket) => {
    socket.setNoDelay(true);
    socket.on('data', (chunk) => {
      serverReceived += chunk.length;
      socket.write(chunk);
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  proxy = await startProxy({ target: typeof address === 'object' && address ? address.port : 0, seed: 7 });
});

afterEach(async () => {
  for (const client of clients.splice(0)) client.destroy();
  await proxy.close();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

async function connect(): Promise<{ socket: Socket; chunks: Buffer[]; errors: Error[] }> {
  const socket = createConnection({ host: '127.0.0.1', port: proxy.port });
  socket.setNoDelay(true);
  clients.push(socket);
  const chunks: Buffer[] = [];
  const errors: Error[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  socket.on('error', (error) => errors.push(error));
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  return { socket, chunks, errors };
}

const received = (chunks: Buffer[]): number => chunks.reduce((sum, chunk) => sum + chunk.length, 0);

async function until(check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(10);
  }
}

describe('fault proxy', () => {
  it('passes data both ways without a fault', async () => {
    const { socket, chunks } = await connect();
    socket.write('hello');
    await until(() => received(chunks) === 5);
    expect(Buffer.concat(chunks).toString()).toBe('hello');
  });

  it('adds latency with jitter per direction, keeping order', async () => {
    const { socket, chunks } = await connect();
    proxy.set({ kind: 'latency', latencyMs: 150, jitterMs: 50 });
    const started = Date.now();
    for (let i = 0; i < 10; i++) socket.write(String(i));
    await until(() => received(chunks) === 10);
    // Two directions, each at least 100 ms (150 - 50 jitter).
    expect(Date.now() - started).toBeGreaterThanOrEqual(190);
    expect(Buffer.concat(chunks).toString()).toBe('0123456789');
    proxy.set({ kind: 'latency', latencyMs: 200, direction: 'downstream' });
    const again = Date.now();
    socket.write('x');
    await until(() => received(chunks) === 11);
    expect(Date.now() - again).toBeGreaterThanOrEqual(190);
  });

  it('black-holes both directions, keeping the connection open; heal lets new data through', async () => {
    const { socket, chunks, errors } = await connect();
    proxy.set({ kind: 'blackhole' });
    socket.write('lost');
    await sleep(300);
    expect(serverReceived).toBe(0);
    expect(received(chunks)).toBe(0);
    proxy.heal();
    socket.write('ok');
    await until(() => received(chunks) === 2);
    expect(Buffer.concat(chunks).toString()).toBe('ok');
    expect(errors).toEqual([]);
    expect(proxy.stats().droppedBytes).toBe(4);
  });

  it('drops only broker→client traffic (lost acknowledgements)', async () => {
    const { socket, chunks } = await connect();
    proxy.set({ kind: 'blackhole', direction: 'downstream' });
    socket.write('request');
    await until(() => serverReceived === 7);
    await sleep(200);
    expect(received(chunks)).toBe(0);
  });

  it('resets open and new connections with RST', async () => {
    const first = await connect();
    proxy.set({ kind: 'reset' });
    await until(() => first.socket.destroyed);
    expect(first.errors.map((error) => (error as NodeJS.ErrnoException).code)).toContain('ECONNRESET');
    const second = createConnection({ host: '127.0.0.1', port: proxy.port });
    clients.push(second);
    const code = await new Promise<string | undefined>((resolve) => {
      second.on('error', (error) => resolve((error as NodeJS.ErrnoException).code));
      second.on('close', () => resolve(undefined));
    });
    expect(code).toBe('ECONNRESET');
    proxy.heal();
    const third = await connect();
    third.socket.write('back');
    await until(() => received(third.chunks) === 4);
  });

  it('flaps: resets every open connection at intervals', async () => {
    proxy.set({ kind: 'flapping', minMs: 100, maxMs: 200 });
    const first = await connect();
    await until(() => first.socket.destroyed, 2_000);
    const second = await connect();
    await until(() => second.socket.destroyed, 2_000);
    expect(proxy.stats().resets).toBeGreaterThanOrEqual(2);
    proxy.heal();
    const third = await connect();
    await sleep(500);
    expect(third.socket.destroyed).toBe(false);
  });

  it('slices data into 1-byte writes', async () => {
    const { socket, chunks } = await connect();
    proxy.set({ kind: 'slicer', direction: 'downstream' });
    const text = 'a'.repeat(40);
    socket.write(text);
    await until(() => received(chunks) === 40);
    expect(Buffer.concat(chunks).toString()).toBe(text);
    expect(chunks.length).toBeGreaterThanOrEqual(20); // coalescing by the kernel is possible, 1 write per byte is not
  });

  it('throttles to a byte rate', async () => {
    const { socket, chunks } = await connect();
    proxy.set({ kind: 'throttle', bytesPerSecond: 40_000, direction: 'upstream' });
    const started = Date.now();
    socket.write(Buffer.alloc(20_000, 1));
    await until(() => received(chunks) === 20_000);
    expect(Date.now() - started).toBeGreaterThanOrEqual(450);
  });

  it('rejects an invalid fault with a typed error', () => {
    expect(() => proxy.set({ kind: 'throttle', bytesPerSecond: 0 })).toThrow(ProxyError);
  });
});
