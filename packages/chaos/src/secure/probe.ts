import { readFileSync } from 'node:fs';
import { connect as tlsConnect } from 'node:tls';
import { amqpServes, exchange } from '../brokers/handshake.js';
import { HOST } from '../brokers/ports.js';
import type { TestCertificates } from './certs.js';

/**
 * AMQP over mutual TLS: the TLS handshake (with the client certificate) must complete and the
 * protocol header be answered by `connection.start`. Resolves true or false, never throws.
 */
export function amqpsServes(port: number, certs: TestCertificates, timeoutMs = 3_000): Promise<boolean> {
  return amqpServes(port, timeoutMs, {
    open: () =>
      tlsConnect({
        host: HOST,
        port,
        ca: readFileSync(certs.ca),
        cert: readFileSync(certs.client.cert),
        key: readFileSync(certs.client.key),
      }),
    ready: 'secureConnect',
  });
}

/** NATS with TLS required: the server's plain-text INFO line must say `tls_required`. */
export function natsTlsServes(port: number, timeoutMs = 3_000): Promise<boolean> {
  return exchange(
    port,
    timeoutMs,
    () => undefined,
    (data) => {
      const text = data.toString('utf8');
      if (!text.includes('\r\n')) return undefined;
      return text.startsWith('INFO ') && text.includes('"tls_required":true');
    },
  );
}
