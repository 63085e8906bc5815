import { type Bus, createBus, NonRetryableError, silentLogger } from '@wharf/core';

/**
 * The quick start: one handler that fails twice and then succeeds (retried by the broker with
 * backoff), and one poison event that is dead-lettered at once. Returns when both have settled.
 */
export async function quickstart(log: (line: string) => void, url = 'memory://quickstart'): Promise<void> {
  // The example prints what happens itself; a service would keep the default logger.
  const bus: Bus = createBus({ url, source: '/examples/quickstart', logger: silentLogger });
  let failuresLeft = 2;
  let done: () => void = () => {};
  const settled = new Promise<void>((resolve) => {
    done = resolve;
  });

  await bus.subscribe(
    'greetings',
    { group: 'printer', retry: { maxAttempts: 3, delays: [100, 200] } },
    async (event, ctx) => {
      const { name } = event.data as { name: string };
      if (name === 'poison') {
        log(`attempt ${ctx.attempt}: ${name} can never be handled -> dead letter`);
        throw new NonRetryableError(`cannot greet ${name}`);
      }
      if (failuresLeft > 0) {
        failuresLeft--;
        log(`attempt ${ctx.attempt}: hello ${name} failed, the broker will retry`);
        throw new Error('printer out of paper');
      }
      log(`attempt ${ctx.attempt}: hello ${name}!`);
      done();
    },
  );

  await bus.publish('greetings', { type: 'Greeting', data: { name: 'world' } });
  await bus.publish('greetings', { type: 'Greeting', data: { name: 'poison' } });
  await settled;

  const [dead] = await bus.listDeadLetters('greetings', 'printer');
  log(`dead letters: ${dead?.event?.type} (${dead?.info?.reason}: ${dead?.info?.errorMessage})`);
  // close() waits for running handlers and their acknowledgements, so the counts are final.
  await bus.close();
  const stats = bus.stats();
  log(
    `stats: ${stats.published} published, ${stats.acked} acked, ${stats.retried} retried, ${stats.deadLettered} dead-lettered`,
  );
}
