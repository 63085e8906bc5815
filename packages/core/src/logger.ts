/** The logging surface Wharf uses; pino, winston and console all fit it. */
export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

const noop = (): void => {};

/** Logs nothing. */
export const silentLogger: Logger = { debug: noop, info: noop, warn: noop, error: noop };

/**
 * Warnings and errors to stderr, the rest dropped: the default, so a library stays quiet
 * unless something needs attention. `WHARF_LOG=debug` turns on everything.
 */
export function consoleLogger(level: 'debug' | 'info' | 'warn' | 'error' = 'warn'): Logger {
  const order = ['debug', 'info', 'warn', 'error'];
  const min = order.indexOf(level);
  const at =
    (name: 'debug' | 'info' | 'warn' | 'error') =>
    (message: string, fields?: Record<string, unknown>): void => {
      if (order.indexOf(name) < min) return;
      const line = fields ? `${message} ${JSON.stringify(fields)}` : message;
      process.stderr.write(`${new Date().toISOString()} ${name.toUpperCase()} ${line}\n`);
    };
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}
