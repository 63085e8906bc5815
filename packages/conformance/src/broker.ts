import { createConnection } from 'node:net';

/** True when CI or `WHARF_REQUIRE_BROKERS` asks that a missing broker fail the run rather than skip. */
export function brokersRequired(): boolean {
  const flag = (name: string): boolean => {
    const v = process.env[name];
    return v !== undefined && v !== '' && v !== '0' && v.toLowerCase() !== 'false';
  };
  return flag('CI') || flag('WHARF_REQUIRE_BROKERS');
}

/**
 * Checks that something accepts TCP connections at host:port within `timeoutMs`.
 * Resolves `undefined` when it does, else a reason to report (the suite is skipped, or fails in CI).
 */
export function probeBroker(name: string, host: string, port: number, timeoutMs = 2_000): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = createConnection({ host, port });
    const done = (reason: string | undefined): void => {
      socket.destroy();
      resolve(reason);
    };
    socket.setTimeout(timeoutMs, () => done(`${name} did not answer on ${host}:${port} within ${timeoutMs} ms`));
    socket.once('connect', () => done(undefined));
    socket.once('error', (error) => done(`${name} is not reachable on ${host}:${port} (${error.message})`));
  });
}
