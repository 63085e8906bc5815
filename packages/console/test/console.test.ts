import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { deleteTestTopology, requireBroker, TEST_ADAPTER_OPTIONS, TEST_BROKERS } from '@wharf/conformance';
import {
  type Adapter,
  type CloudEvent,
  ContractViolationError,
  createBus,
  type EventValidator,
  loadAdapter,
  NonRetryableError,
  silentLogger,
} from '@wharf/core';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startConsole } from '../src/index.js';

/*
 * The console in a real browser: Debian's chromium (apt-get install -y chromium), driven by
 * playwright-core. Never a browser downloaded at install time; without /usr/bin/chromium this file
 * fails, it does not skip.
 */
const CHROMIUM = '/usr/bin/chromium';
/** The README's screenshots are refreshed by the memory run with WHARF_CONSOLE_SCREENSHOTS=1. */
const docs = join(dirname(fileURLToPath(import.meta.url)), '..', 'docs');
const unique = (label: string): string => `${label}-${randomBytes(4).toString('hex')}`;

let browser: Browser;
beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`[console] the browser tests need Debian's chromium at ${CHROMIUM}: apt-get install -y chromium`);
  }
  // --no-sandbox: CI runs as root, where chromium refuses its sandbox.
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
});
afterAll(async () => {
  await browser?.close();
});
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
});

const BROKERS: readonly { name: string; url: string; port: number }[] = [
  { name: 'memory', url: '', port: 0 },
  ...TEST_BROKERS,
];

/** The contract the edited payloads are checked against: a charge names its kind. */
const contract: EventValidator = {
  validate(direction, channel, event) {
    const data = event.data as { kind?: unknown } | undefined;
    if (typeof data?.kind !== 'string') {
      throw new ContractViolationError(`${direction} of ${event.type} on ${channel}`, [
        { path: '/data/kind', message: 'must be a string' },
      ]);
    }
  },
};

/** An adapter whose backlog reads fail while `down`: the broker going away while the page is open. */
function goingAway(real: Adapter, state: { down: boolean }): Adapter {
  return new Proxy(real, {
    get(target, name) {
      if (name === 'backlog') {
        const read: NonNullable<Adapter['backlog']> = async (channel, group, policy) => {
          if (state.down) throw new Error('connect ECONNREFUSED 127.0.0.1:5999');
          return (target.backlog as NonNullable<Adapter['backlog']>).call(target, channel, group, policy);
        };
        return read;
      }
      const value = Reflect.get(target, name, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

/** Kafka reads a dead-letter topic through a consumer group join: a second or more per read. */
const wait = { timeout: 30_000, interval: 100 };
const rows = (page: Page) => page.locator('#dead-letters tbody tr.dead-letter');

describe.each(BROKERS)('wharf console on $name', (broker) => {
  it('shows dead letters live, filters, opens, replays one/a selection/a group, edits, purges, and refuses requests without the token', async (ctx) => {
    if (broker.name !== 'memory' && !(await requireBroker(ctx, 'console', broker))) return;
    const memory = broker.name === 'memory';
    const shots = memory && process.env.WHARF_CONSOLE_SCREENSHOTS === '1';
    const url = memory ? `memory://${unique('console')}` : broker.url;
    const adapterOptions = TEST_ADAPTER_OPTIONS[broker.name] ?? {};
    const channel = unique(`console-${broker.name}`);
    cleanups.push(() => deleteTestTopology(url, channel, ['billing']));

    const consumer = createBus({ url, adapterOptions, logger: silentLogger, shutdownTimeoutMs: 2_000 });
    cleanups.push(() => consumer.close());
    let fixed = false;
    const handled: CloudEvent[] = [];
    await consumer.subscribe(channel, { group: 'billing', retry: { maxAttempts: 1 } }, (event) => {
      if (!fixed) {
        if ((event.data as { kind: string }).kind === 'poison') throw new NonRetryableError('card declined');
        throw new RangeError('amount out of range');
      }
      handled.push(event);
    });

    const weather = { down: false };
    const real = await loadAdapter({ url, logger: silentLogger, ...adapterOptions });
    const operator = createBus({ url, adapter: goingAway(real, weather), validator: contract, logger: silentLogger });
    cleanups.push(() => operator.close());
    const server = await startConsole({
      bus: operator,
      targets: [{ channel, group: 'billing' }],
      port: 0,
      refreshMs: 300,
      allowEdit: true,
    });
    cleanups.push(() => server.close());
    const base = server.url.replace(/\/\?token=.*$/, '');

    // Without the token: refused, the page included. With it but without the CSRF token: no action.
    for (const path of ['/', '/app.js', '/api/dead-letters', '/api/events']) {
      expect((await fetch(`${base}${path}`)).status, path).toBe(401);
    }
    expect((await fetch(`${base}/?token=wrong-token-of-some-length`)).status).toBe(401);
    const noCsrf = await fetch(`${base}/api/purge`, {
      method: 'POST',
      headers: { authorization: `Bearer ${server.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ channel, group: 'billing', confirm: 'purge' }),
    });
    expect(noCsrf.status).toBe(403);

    const page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
    cleanups.push(() => page.close());
    await page.goto(server.url);
    expect(page.url()).toBe(`${base}/`); // the token went into the cookie, out of the address bar

    // Dead letters appear while the page is open.
    const sent: CloudEvent[] = [];
    for (const [kind, correlationid] of [
      ['poison', 'order-1'],
      ['poison', 'order-2'],
      ['boom', 'order-3'],
    ] as const) {
      sent.push(await consumer.publish(channel, { type: 'Charge', data: { kind, amount: 42 }, correlationid }));
    }
    const [first, second, third] = sent as [CloudEvent, CloudEvent, CloudEvent];
    await expect.poll(() => rows(page).count(), wait).toBe(3);
    await expect
      .poll(
        () => page.locator(`#overview tr[data-group="${channel}/billing"] td[data-col="deadLetters"]`).textContent(),
        wait,
      )
      .toBe('3');
    // From the second reading on, the group's backlog rate: nothing waits, so it holds at 0.
    await expect
      .poll(() => page.locator(`#overview tr[data-group="${channel}/billing"] td[data-col="rate"]`).textContent(), wait)
      .toBe('0');
    await expect
      .poll(() => page.locator('#summary .chip').allTextContents(), wait)
      .toEqual(['non-retryable · NonRetryableError: 2', 'retries-exhausted · RangeError: 1']);
    if (shots) await page.screenshot({ path: join(docs, 'overview.png'), fullPage: true });

    // Filters: by reason, and search by correlation id and by event id.
    await page.selectOption('#f-reason', 'retries-exhausted');
    await expect.poll(() => rows(page).count(), wait).toBe(1);
    await page.click('#f-clear');
    await page.fill('#f-search', 'order-2');
    await expect.poll(() => rows(page).getAttribute('data-id'), wait).toBe(second.id);
    await page.fill('#f-search', third.id.slice(0, 13));
    await expect.poll(() => rows(page).getAttribute('data-id'), wait).toBe(third.id);
    await page.click('#f-clear');
    await expect.poll(() => rows(page).count(), wait).toBe(3);

    // Open one: payload, reason, error, attempts.
    await page.click(`tr[data-id="${first.id}"]`);
    await expect.poll(() => page.locator('#detail').isVisible(), wait).toBe(true);
    expect(await page.locator('#d-payload').textContent()).toContain('"kind": "poison"');
    const meta = await page.locator('#d-meta').textContent();
    expect(meta).toContain('NonRetryableError: card declined');
    expect(meta).toContain('order-1');
    expect(meta).toMatch(/Stack\s*at /); // the handler's frames, one per line
    if (shots) await page.screenshot({ path: join(docs, 'detail.png') });

    // Replay it once the cause is fixed: processed, and gone from the list.
    fixed = true;
    await page.click('#d-replay');
    await expect.poll(() => handled.map((e) => e.id), wait).toEqual([first.id]);
    await expect.poll(() => page.locator(`tr[data-id="${first.id}"]`).count(), wait).toBe(0);
    expect(handled[0]).toMatchObject({ replaycount: '1' });

    // Edit-and-replay: a payload that breaks the contract is refused before it is sent.
    await page.click(`tr[data-id="${second.id}"]`);
    await page.fill('#d-edit-data', '{"amount": 7}');
    await page.click('#d-edit-send');
    await expect.poll(() => page.locator('#toast').textContent(), wait).toContain('violates the contract');
    expect(await rows(page).count()).toBe(2);
    expect(await page.locator('#detail').isVisible()).toBe(true); // still open, to correct the payload
    await page.fill('#d-edit-data', '{"kind": "corrected", "amount": 7}');
    await page.click('#d-edit-send');
    await expect.poll(() => handled.length, wait).toBe(2);
    expect(handled[1]).toMatchObject({ causationid: second.id, correlationid: 'order-2', data: { kind: 'corrected' } });
    expect(handled[1]?.id).not.toBe(second.id);
    await expect.poll(() => page.locator(`tr[data-id="${second.id}"]`).count(), wait).toBe(0);

    // Purge with a typed confirmation.
    await page.check(`tr[data-id="${third.id}"] input[type=checkbox]`);
    await page.click('#purge-selected');
    expect(await page.locator('#c-ok').isDisabled()).toBe(true);
    await page.fill('#c-input', 'purge');
    if (shots) await page.screenshot({ path: join(docs, 'purge.png') });
    await page.click('#c-ok');
    await expect.poll(() => rows(page).count(), wait).toBe(0);
    await expect.poll(() => page.locator('#empty').isVisible(), wait).toBe(true);
    expect(handled).toHaveLength(2);

    // Replay a selection, then a whole group.
    fixed = false;
    const more: CloudEvent[] = [];
    for (const n of [1, 2, 3]) {
      more.push(
        await consumer.publish(channel, { type: 'Charge', data: { kind: 'poison', n }, correlationid: 'order-4' }),
      );
    }
    await expect.poll(() => rows(page).count(), wait).toBe(3);
    fixed = true;
    await page.check(`tr[data-id="${more[0]?.id}"] input[type=checkbox]`);
    await page.check(`tr[data-id="${more[1]?.id}"] input[type=checkbox]`);
    await page.click('#replay-selected');
    await expect.poll(() => rows(page).count(), wait).toBe(1);
    await expect.poll(() => handled.length, wait).toBe(4);
    await page.click(`#overview tr[data-group="${channel}/billing"] button.replay-group`);
    await expect.poll(() => rows(page).count(), wait).toBe(0);
    await expect.poll(() => handled.length, wait).toBe(5);
    expect(
      handled
        .slice(2)
        .map((e) => e.id)
        .sort(),
    ).toEqual(more.map((e) => e.id).sort());

    // Broker credentials are nowhere on the page or in its API.
    const listing = await (
      await fetch(`${base}/api/dead-letters`, { headers: { cookie: `wharf_console=${server.token}` } })
    ).text();
    for (const text of [await page.content(), listing]) {
      expect(text).not.toContain('guest:guest');
      expect(text).not.toContain('guest@');
    }

    // The broker going away while the page is open: a clear message, then recovery.
    weather.down = true;
    await expect.poll(() => page.locator('#banner').isVisible(), wait).toBe(true);
    expect(await page.locator('#banner').textContent()).toContain('cannot be reached: connect ECONNREFUSED');
    if (shots) await page.screenshot({ path: join(docs, 'broker-gone.png') });
    weather.down = false;
    await expect.poll(() => page.locator('#banner').isVisible(), wait).toBe(false);
  });
});
