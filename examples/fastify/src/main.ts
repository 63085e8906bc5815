import { createService } from './service.js';

// WHARF_BROKER=amqp://guest:guest@127.0.0.1:5672 PORT=3000 node dist/main.js
const service = createService();
const url = await service.start({ port: Number(process.env.PORT ?? 3000) });
console.log(`listening on ${url} (GET /health, GET /ready, POST /orders, GET /charges/:orderId)`);

// An orchestrator sends SIGTERM: stop taking requests and events, finish what runs, close the bus.
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    service.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        console.error(error);
        process.exit(1);
      },
    );
  });
}
