import { createConnection } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { readTlsMaterial } from '@wharf/core';
import { ADAPTER_NAME, type NatsTlsOptions } from './options.js';

/**
 * Why a TLS connection to a NATS server fails, found with a connection of our own: nats.js loses the
 * server's TLS alert (a missing or refused client certificate under TLS 1.3 arrives after the
 * handshake, as a socket error nats.js treats as a disconnect) and reports only a timeout. Reads the
 * server's plain-text INFO, upgrades to TLS with the adapter's settings, sends PING and waits for PONG.
 * Resolves with the socket's error, or undefined when the link works (or within `timeoutMs` nothing
 * was learnt). Never throws.
 */
export function probeTls(server: string, tls: NatsTlsOptions, timeoutMs: number): Promise<Error | undefined> {
  const at = server.lastIndexOf(':');
  const host = server.slice(0, at).replace(/^\[(.*)\]$/, '$1');
  const port = Number(server.slice(at + 1));
  return new Promise((resolve) => {
    let settled = false;
    let text = '';
    const raw = createConnection({ host, port });
    let secure: ReturnType<typeof tlsConnect> | undefined;
    const timer = setTimeout(() => finish(undefined), timeoutMs);
    function finish(result: Error | undefined): void {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      secure?.destroy();
      raw.destroy();
      resolve(result);
    }
    raw.once('error', () => finish(undefined));
    raw.on('data', (chunk: Buffer) => {
      if (secure) return;
      text += chunk.toString('utf8');
      if (!text.includes('\r\n')) return;
      raw.removeAllListeners('data');
      let material: ReturnType<typeof readTlsMaterial>;
      try {
        material = readTlsMaterial(ADAPTER_NAME, tls, host);
      } catch (error) {
        finish(error as Error);
        return;
      }
      const contents = {
        ...(tls.ca ? { ca: [tls.ca] } : {}),
        ...(tls.cert ? { cert: tls.cert } : {}),
        ...(tls.key ? { key: tls.key } : {}),
      };
      secure = tlsConnect({ socket: raw, ...material, ...contents });
      secure.once('error', (error) => finish(error));
      secure.once('secureConnect', () => secure?.write('CONNECT {"verbose":false}\r\nPING\r\n'));
      secure.on('data', (data: Buffer) => {
        if (data.toString('utf8').includes('PONG') || data.toString('utf8').includes('-ERR')) finish(undefined);
      });
    });
  });
}
