/**
 * One TLS handshake and one ApiVersions request before the client library connects. Both libraries
 * treat a failed handshake as a network error and retry it (kafkajs for seconds, and then the
 * adapter's wait for unreachable brokers for a minute), and @platformatic/kafka reports a refused
 * client certificate only as "Connection closed". A certificate does not fix itself between attempts:
 * this check turns it into the typed error at once.
 */
import type { ConnectionOptions } from 'node:tls';
import { connect } from 'node:tls';
import type { WharfError } from '@wharf/core';
import { tlsError } from './errors.js';
import type { ResolvedKafkaOptions } from './options.js';

/** ApiVersions v0, which a broker answers before SASL: enough to see the server's verdict on our certificate (TLS 1.3 sends it after the handshake). */
function apiVersionsRequest(): Buffer {
  const clientId = Buffer.from('wharf-tls-check');
  const body = Buffer.alloc(10 + clientId.length);
  body.writeInt16BE(18, 0);
  body.writeInt16BE(0, 2);
  body.writeInt32BE(1, 4);
  body.writeInt16BE(clientId.length, 8);
  clientId.copy(body, 10);
  const length = Buffer.alloc(4);
  length.writeInt32BE(body.length, 0);
  return Buffer.concat([length, body]);
}

/** The socket's verdict: `answered`, `silent` (unreachable, closed, timed out: not for this check to judge), or the error. */
function handshake(host: string, port: number, ssl: ConnectionOptions, timeoutMs: number): Promise<unknown> {
  return new Promise((resolve) => {
    const socket = connect({ host, port, ...ssl });
    let settled = false;
    const finish = (verdict: unknown): void => {
      if (settled) return;
      settled = true;
      socket.destroy();
      resolve(verdict);
    };
    socket.setTimeout(timeoutMs, () => finish('silent'));
    socket.once('error', (error) => finish(error));
    socket.once('close', () => finish('silent'));
    socket.once('secureConnect', () => socket.write(apiVersionsRequest()));
    socket.once('data', () => finish('answered'));
  });
}

/**
 * Checks TLS against the first bootstrap broker that answers; throws the typed `TlsError` for a
 * certificate problem. Unreachable brokers are left to the client (and the wait for them).
 */
export async function checkTls(options: ResolvedKafkaOptions, timeoutMs: number): Promise<void> {
  if (options.ssl === undefined || options.ssl === false) return;
  const ssl: ConnectionOptions = options.ssl === true ? {} : options.ssl;
  for (const broker of options.brokers) {
    const at = broker.lastIndexOf(':');
    const host = broker.slice(0, at).replace(/^\[(.*)\]$/, '$1');
    const verdict = await handshake(host, Number(broker.slice(at + 1)), ssl, timeoutMs);
    if (verdict === 'answered') return;
    if (verdict === 'silent') continue;
    const typed: WharfError | undefined = tlsError(verdict, broker, options.tls);
    if (typed !== undefined) throw typed;
  }
}
