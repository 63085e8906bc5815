import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { AppModule } from './app.module.js';
import { Orders } from './orders.js';

// WHARF_BROKER=amqp://guest:guest@127.0.0.1:5672 node dist/main.js o-1 o-2
// Places the orders given as arguments, prints what the handlers do, and runs until SIGTERM/SIGINT.
const app = await NestFactory.createApplicationContext(
  AppModule.forRoot(
    { url: process.env.WHARF_BROKER },
    {
      chargeMs: Number(process.env.CHARGE_MS ?? 0),
      onCharge: (stage, orderId) => console.log(`${stage === 'start' ? 'charging' : 'charged'} ${orderId}`),
    },
  ),
  { logger: ['error', 'warn'] },
);
// On a signal Nest runs the shutdown hooks (running handlers finish, the bus closes), then exits 0.
app.enableShutdownHooks(['SIGTERM', 'SIGINT'], { useProcessExit: true });
console.log('ready');
for (const orderId of process.argv.slice(2)) await app.get(Orders).place({ orderId, total: 100 });
