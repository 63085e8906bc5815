import { createConnection } from 'node:net';
import { ChaosTimeoutError } from '../errors.js';
import { HOST } from './ports.js';

/**
 * One NATS request/reply over a raw connection (the JetStream API for stream limits and info),
 * so this package needs no NATS client of its own. Resolves with the reply's payload.
 */
export function natsRequest(port: number, subject: string, payload: string, timeoutMs = 5_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host: HOST, port });
    const inbox = `_INBOX.wharf.chaos.${Math.random().toString(36).slice(2)}`;
    let buffer = '';
    let sent = false;
    const finish = (error: Error | undefined, value = ''): void => {
      socket.destroy();
      if (error) reject(error);
      else resolve(value);
    };
    socket.setTimeout(timeoutMs, () =>
      finish(new ChaosTimeoutError(`no reply to ${subject} from NATS on port ${port} within ${timeoutMs} ms`)),
    );
    socket.once('error', (error) => finish(error));
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      if (!sent && buffer.includes('\r\n')) {
        sent = true;
        const body = Buffer.from(payload);
        socket.write(
          `CONNECT {"verbose":false,"headers":true,"no_responders":true}\r\nSUB ${inbox} 1\r\nPUB ${subject} ${inbox} ${body.length}\r\n${payload}\r\n`,
        );
        buffer = '';
        return;
      }
      const at = buffer.indexOf(`MSG ${inbox}`);
      if (buffer.includes('-ERR')) return finish(new Error(`NATS refused ${subject}: ${buffer.trim()}`));
      if (buffer.includes(`HMSG ${inbox}`)) return finish(new Error(`no responder for ${subject} (is JetStream up?)`));
      if (at < 0) return;
      const header = buffer.slice(at, buffer.indexOf('\r\n', at));
      const size = Number(header.split(' ').pop());
      const start = buffer.indexOf('\r\n', at) + 2;
      if (Buffer.byteLength(buffer.slice(start)) < size) return;
      finish(undefined, Buffer.from(buffer.slice(start)).subarray(0, size).toString('utf8'));
    });
  });
}
