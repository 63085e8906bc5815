import { createConnection, type Socket } from 'node:net';
import { HOST } from './ports.js';

/**
 * Protocol handshakes that prove a broker serves, not merely accepts TCP: a node can listen long
 * before it answers (FIELD-NOTES: a wedged RabbitMQ accepted TCP but never sent `connection.start`).
 * Each resolves true or false, never throws.
 */

/** How a handshake reaches the broker: plain TCP by default, or a TLS socket (ready on `secureConnect`). */
export interface HandshakeLink {
  open(): Socket;
  readonly ready: 'connect' | 'secureConnect';
}

export function exchange(
  port: number,
  timeoutMs: number,
  onConnect: (socket: Socket) => void,
  done: (data: Buffer, socket: Socket) => boolean | undefined,
  link: HandshakeLink = { open: () => createConnection({ host: HOST, port }), ready: 'connect' },
): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = link.open();
    let buffer = Buffer.alloc(0);
    let settled = false;
    const finish = (ok: boolean): void => {
      if (settled) return;
      settled = true;
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => finish(false));
    socket.once('error', () => finish(false));
    socket.once('close', () => finish(false));
    socket.once(link.ready, () => onConnect(socket));
    socket.on('data', (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      const verdict = done(buffer, socket);
      if (verdict !== undefined) finish(verdict);
    });
  });
}

/** AMQP 0-9-1: the protocol header must be answered by a `connection.start` method frame (class 10, method 10). */
export function amqpServes(port: number, timeoutMs = 3_000, link?: HandshakeLink): Promise<boolean> {
  return exchange(
    port,
    timeoutMs,
    (socket) => socket.write(Buffer.from([0x41, 0x4d, 0x51, 0x50, 0, 0, 9, 1])),
    (data) =>
      data.length < 11 ? undefined : data[0] === 1 && data.readUInt16BE(7) === 10 && data.readUInt16BE(9) === 10,
    link,
  );
}

/** Kafka: an ApiVersions v0 request must come back with our correlation id and error code 0. */
export function kafkaServes(port: number, timeoutMs = 3_000, link?: HandshakeLink): Promise<boolean> {
  const clientId = Buffer.from('wharf-chaos-probe');
  const body = Buffer.alloc(10 + clientId.length);
  body.writeInt16BE(18, 0);
  body.writeInt16BE(0, 2);
  body.writeInt32BE(4242, 4);
  body.writeInt16BE(clientId.length, 8);
  clientId.copy(body, 10);
  const length = Buffer.alloc(4);
  length.writeInt32BE(body.length, 0);
  return exchange(
    port,
    timeoutMs,
    (socket) => socket.write(Buffer.concat([length, body])),
    (data) => (data.length < 10 ? undefined : data.readInt32BE(4) === 4242 && data.readInt16BE(8) === 0),
    link,
  );
}

/**
 * NATS with JetStream: after INFO, a `$JS.API.INFO` request must get an account-info reply without
 * an error (JetStream answers 503 / no responders while it recovers its store after a restart).
 */
export function natsJetStreamServes(port: number, timeoutMs = 3_000): Promise<boolean> {
  let asked = false;
  return exchange(
    port,
    timeoutMs,
    () => undefined,
    (data, socket) => {
      const text = data.toString('utf8');
      if (!asked) {
        if (!text.includes('\r\n')) return undefined;
        if (!text.startsWith('INFO ')) return false;
        asked = true;
        socket.write(
          'CONNECT {"verbose":false,"pedantic":false,"headers":true,"no_responders":true}\r\n' +
            'SUB _INBOX.wharf.probe 1\r\nPUB $JS.API.INFO _INBOX.wharf.probe 0\r\n\r\n',
        );
        return undefined;
      }
      if (text.includes('-ERR')) return false;
      const at = text.indexOf('MSG _INBOX.wharf.probe');
      const hat = text.indexOf('HMSG _INBOX.wharf.probe');
      if (hat >= 0) return false; // a status-only reply: 503 no responders, JetStream not up yet
      if (at < 0) return undefined;
      const body = text.slice(at).split('\r\n')[1];
      if (body === undefined || body === '' || !body.endsWith('}')) return undefined;
      return body.includes('account_info_response') && !body.includes('"error"');
    },
  );
}
