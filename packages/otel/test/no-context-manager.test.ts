import { context } from '@opentelemetry/api';
import { createBus, silentLogger } from '@wharf/core';
import { it } from 'vitest';
import { spansNamed, tracingHarness } from './harness.js';
import { expectSagaTraces, runMiniSaga } from './saga.js';

// This file registers no context manager (vitest runs each file in its own module graph and
// context): `context.with` does nothing, as in an application that set up a tracer provider but no
// AsyncLocalStorage context manager. ctx.publish must still continue the trace.
it('continues the trace through ctx.publish without a context manager', async () => {
  context.disable();
  const { tracing, spans } = tracingHarness();
  const bus = createBus({ url: 'memory://otel-no-context', logger: silentLogger, instrumentation: tracing });
  await runMiniSaga(bus, 'plain', ['o-1', 'o-2']);
  await spansNamed(spans, /^process plain.outcomes/, 2);
  await bus.close();
  expectSagaTraces(spans(), 'plain', 2, { ambientIsSend: false });
});
