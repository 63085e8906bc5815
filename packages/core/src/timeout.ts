/**
 * Settles like `work`, or rejects with `onTimeout()`'s error if `work` has not settled within `ms`.
 * `work` itself goes on (a promise cannot be cancelled): `onTimeout` is where the caller abandons it
 * (closes the connection it waits on, for example). A rejection of `work` after the timeout is handled.
 * For adapter authors: every wait on a broker answer is bounded with this.
 */
export function withTimeout<T>(work: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(onTimeout()), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}
