import { WharfError } from '@wharf/core';

/** The console's options are not valid. */
export class ConsoleConfigError extends WharfError {
  override readonly name = 'ConsoleConfigError';
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_WHARF_CONSOLE_CONFIG', 'console', message, options);
  }
}
