import { WharfError } from '@wharf/core';

/** A bad command line for the peer bench runner; the message says what to change. */
export class PeerBenchUsageError extends WharfError {
  override readonly name = 'PeerBenchUsageError';
  constructor(message: string) {
    super('ERR_WHARF_BENCH_PEERS_USAGE', 'bench-peers', message);
  }
}
