import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { deleteTestTopology, requireBroker, TEST_ADAPTER_OPTIONS, TEST_BROKERS } from '@wharf/conformance';
import {
  type Adapter,
  type Bus,
  type CloudEvent,
  createBus,
  DeadLetterQueue,
  loadAdapter,
  NonRetryableError,
  silentLogger,
  UnknownDeadLetterError,
} from '@wharf/core';
import { afterEach, describe, expect, it } from 'vitest';
import { main } from '../src/main.js';

/** Runs `wharf …` in this process, so a memory:// broker is shared with the test. */
async function wharf(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await main(args, {
    out: (text) => {
      stdout += text.endsWith('\n') ? text : `${text}\n`;
    },
    err: (text) => {
      stderr += text.endsWith('\n') ? text : `${text}\n`;
    },
  });
  return { code, stdout, stderr };
}

const unique = (label: string): string => `${label}-${randomBytes(4).toString('hex')}`;
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
});

const BROKERS: readonly { name: string; url: string; port: number }[] = [
  { name: 'memory', url: '', port: 0 },
  ...TEST_BROKERS,
];

async function until(what: string, check: () => Promise<boolean> | boolean, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * An adapter whose dead-letter reads fail right after a visit asked for a removal: a replay that
 * published and was confirmed, then was interrupted before the dead letter was removed.
 */
function interrupting(real: Adapter, on: { interrupt: boolean }): Adapter {
  return new Proxy(real, {
    get(target, name) {
      if (name === 'readDeadLetters') {
        const read: Adapter['readDeadLetters'] = (channel, group, options, visit) =>
          target.readDeadLetters(channel, group, options, async (letter) => {
            const remove = await visit(letter);
            if (remove && on.interrupt) throw new Error('replay interrupted after the publish was confirmed');
            return remove;
          });
        return read;
      }
      const value = Reflect.get(target, name, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

describe.each(BROKERS)('wharf dlq on $name', (broker) => {
  it('lists, filters, shows, replays (also interrupted and redirected) and purges the same way', async (ctx) => {
    if (broker.name !== 'memory' && !(await requireBroker(ctx, 'dlq', broker))) return;
    const url = broker.name === 'memory' ? `memory://${unique('dlq')}` : broker.url;
    const adapterOptions = TEST_ADAPTER_OPTIONS[broker.name] ?? {};
    const channel = unique(`dlq-${broker.name}`);
    const elsewhere = unique(`dlq-to-${broker.name}`);
    cleanups.push(
      () => deleteTestTopology(url, channel, ['billing']),
      () => deleteTestTopology(url, elsewhere, ['archive']),
    );
    const open = (adapter?: Adapter): Bus => {
      const bus = createBus({ url, adapterOptions, logger: silentLogger, shutdownTimeoutMs: 2_000, adapter });
      cleanups.push(() => bus.close());
      return bus;
    };

    // A consumer that fails until "fixed": poison events are non-retryable, the others exhaust one attempt.
    const consumer = open();
    let fixed = false;
    const handled: CloudEvent[] = [];
    await consumer.subscribe(channel, { group: 'billing', retry: { maxAttempts: 1 } }, (event) => {
      if (!fixed) {
        if ((event.data as { kind: string }).kind === 'poison') throw new NonRetryableError('card declined');
        throw new RangeError('amount out of range');
      }
      handled.push(event);
    });
    const redirected: CloudEvent[] = [];
    await consumer.subscribe(elsewhere, { group: 'archive' }, (event) => {
      redirected.push(event);
    });
    const sent = [];
    for (const [kind, correlationid] of [
      ['poison', 'c-1'],
      ['poison', 'c-1'],
      ['poison', 'c-2'],
      ['boom', 'c-3'],
      ['boom', 'c-3'],
    ] as const) {
      sent.push(await consumer.publish(channel, { type: 'Charge', data: { kind }, correlationid }));
    }
    const ids = sent.map((e) => e.id);
    const where = ['--broker', url, '--channel', channel, '--group', 'billing'];

    // An empty dead-letter destination, on a channel nothing was ever declared on.
    const empty = await wharf(
      'dlq',
      'list',
      '--broker',
      url,
      '--channel',
      unique('dlq-none'),
      '--group',
      'g',
      '--json',
    );
    expect(empty.code, empty.stderr).toBe(0);
    expect(JSON.parse(empty.stdout)).toMatchObject({ deadLetters: [], summary: [], truncated: [] });

    const operator = new DeadLetterQueue(open());
    const target = [{ channel, group: 'billing' }];
    await until('5 dead letters', async () => (await operator.list(target)).deadLetters.length === 5);

    // list: grouped by reason and error type, with counts; the same JSON on every broker.
    const list = await wharf('dlq', 'list', ...where, '--json');
    expect(list.code, list.stderr).toBe(0);
    const listing = JSON.parse(list.stdout);
    expect(listing.summary).toEqual([
      { reason: 'non-retryable', errorType: 'NonRetryableError', count: 3 },
      { reason: 'retries-exhausted', errorType: 'RangeError', count: 2 },
    ]);
    expect(listing.deadLetters.map((d: { id: string }) => d.id).sort()).toEqual([...ids].sort());
    const human = await wharf('dlq', 'list', ...where);
    expect(human.stdout).toContain(`5 dead letters in ${channel}/billing`);
    expect(human.stdout).toMatch(/3 {2}non-retryable {2}NonRetryableError/);

    // filters
    const count = async (...filters: string[]): Promise<number> => {
      const run = await wharf('dlq', 'list', ...where, ...filters, '--json');
      expect(run.code, run.stderr).toBe(0);
      return JSON.parse(run.stdout).deadLetters.length;
    };
    expect(await count('--reason', 'retries-exhausted')).toBe(2);
    expect(await count('--error-type', 'NonRetryableError', '--correlation-id', 'c-1')).toBe(2);
    expect(await count('--id', ids[3] as string)).toBe(1);
    expect(await count('--since', '1h', '--event-type', 'Charge')).toBe(5);
    expect(await count('--since', new Date(Date.now() + 60_000).toISOString())).toBe(0);

    // show, and an unknown id: a typed error in the library, exit 1 with the id in the CLI.
    const show = await wharf('dlq', 'show', ids[0] as string, ...where, '--json');
    expect(show.code, show.stderr).toBe(0);
    expect(JSON.parse(show.stdout).deadLetters[0]).toMatchObject({
      id: ids[0],
      key: `${channel}/billing/${ids[0]}`,
      event: { type: 'Charge', data: { kind: 'poison' }, correlationid: 'c-1' },
      info: { reason: 'non-retryable', errorType: 'NonRetryableError', errorMessage: 'card declined', attempts: 1 },
      replayCount: 0,
    });
    expect(JSON.parse(show.stdout).deadLetters[0].info.errorStack).toMatch(/^at .*dlq\.test\.ts/);
    await expect(operator.show(target, 'no-such-id')).rejects.toBeInstanceOf(UnknownDeadLetterError);
    const unknown = await wharf('dlq', 'show', 'no-such-id', ...where);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('no dead letter with id "no-such-id"');
    const unknownReplay = await wharf('dlq', 'replay', 'no-such-id', ...where, '--json');
    expect(unknownReplay.code).toBe(1);
    expect(JSON.parse(unknownReplay.stdout)).toMatchObject({ replayed: [], notFound: ['no-such-id'] });

    fixed = true;
    // An interrupted replay: published and confirmed, not removed. Nothing is lost (the dead letter
    // stays), and replaying it again has no second effect (the group's dedup store).
    const switchable = { interrupt: true };
    const real = await loadAdapter({ url, logger: silentLogger, ...adapterOptions });
    const flaky = new DeadLetterQueue(open(interrupting(real, switchable)));
    await expect(flaky.replay(target, { ids: [ids[3] as string] })).rejects.toThrow('interrupted');
    await until('the interrupted replay handled', () => handled.length === 1);
    expect((await operator.list(target, { ids: [ids[3] as string] })).deadLetters).toHaveLength(1);
    switchable.interrupt = false;
    const duplicatesBefore = consumer.stats().duplicates;
    expect(await flaky.replay(target, { ids: [ids[3] as string] })).toMatchObject({
      done: [`${channel}/billing/${ids[3]}`],
    });
    await until('the second copy deduplicated', () => consumer.stats().duplicates > duplicatesBefore);
    expect(handled.map((e) => e.id)).toEqual([ids[3]]);

    // replay everything matching a filter, one at a time; marker and count on each.
    const replay = await wharf('dlq', 'replay', ...where, '--correlation-id', 'c-1', '--json');
    expect(replay.code, replay.stderr).toBe(0);
    expect(JSON.parse(replay.stdout).replayed).toHaveLength(2);
    await until('the replayed events handled', () => handled.length === 3);
    for (const event of handled.slice(1)) {
      expect(event.correlationid).toBe('c-1');
      expect(typeof event.replayed).toBe('string');
      expect(event.replaycount).toBe('1');
    }

    // --to another channel
    const to = await wharf('dlq', 'replay', ids[2] as string, ...where, '--to', elsewhere, '--json');
    expect(to.code, to.stderr).toBe(0);
    await until('the redirected event handled', () => redirected.length === 1);
    expect(redirected[0]).toMatchObject({ id: ids[2], replaycount: '1' });

    // purge: refused without confirmation when not at a terminal, then with --yes.
    const left = await operator.list(target);
    expect(left.deadLetters.map((d) => d.id)).toEqual([ids[4]]);
    const refused = await wharf('dlq', 'purge', ...where, '--all');
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('confirm with --yes');
    expect((await operator.list(target)).deadLetters).toHaveLength(1);
    const purge = await wharf('dlq', 'purge', ...where, '--all', '--yes', '--json');
    expect(purge.code, purge.stderr).toBe(0);
    expect(JSON.parse(purge.stdout).purged).toEqual([`${channel}/billing/${ids[4]}`]);
    expect((await operator.list(target)).deadLetters).toHaveLength(0);
    expect(handled).toHaveLength(3);
  });
});

describe('wharf dlq --spec', () => {
  it('reads every receiving channel and group of a contract, and refuses what it cannot do', async () => {
    const url = `memory://${unique('dlq-spec')}`;
    const dir = mkdtempSync(join(tmpdir(), 'wharf-dlq-'));
    const spec = join(dir, 'contract.yaml');
    writeFileSync(
      spec,
      `asyncapi: 3.0.0
info: { title: t, version: 1.0.0 }
channels:
  placed: { address: spec.placed, messages: { P: { name: P } } }
  paid: { address: spec.paid, messages: { Q: { name: Q } } }
operations:
  billOnPlaced: { action: receive, channel: { $ref: '#/channels/placed' }, x-wharf-group: billing }
  shipOnPlaced:
    action: receive
    channel: { $ref: '#/channels/placed' }
    bindings: { kafka: { groupId: { type: string, const: shipping } } }
  auditOnPaid: { action: receive, channel: { $ref: '#/channels/paid' }, traits: [{ $ref: '#/components/operationTraits/audit' }] }
  sendPaid: { action: send, channel: { $ref: '#/channels/paid' } }
components:
  operationTraits:
    audit: { bindings: { nats: { queue: audit } } }
`,
    );
    const bus = createBus({ url, logger: silentLogger });
    cleanups.push(() => bus.close());
    for (const [channel, group] of [
      ['spec.placed', 'billing'],
      ['spec.placed', 'shipping'],
      ['spec.paid', 'audit'],
    ] as const) {
      await bus.subscribe(channel, { group }, () => {
        throw new NonRetryableError(`${group} refuses`);
      });
    }
    await bus.publish('spec.placed', { type: 'P' });
    await bus.publish('spec.paid', { type: 'Q' });
    const read = async (...extra: string[]) => {
      const run = await wharf('dlq', 'list', '--broker', url, '--spec', spec, ...extra, '--json');
      expect(run.code, run.stderr).toBe(0);
      return JSON.parse(run.stdout) as { targets: unknown[]; deadLetters: { channel: string; group: string }[] };
    };
    await until('3 dead letters', async () => (await read()).deadLetters.length === 3);
    const all = await read();
    expect(all.targets).toEqual([
      { channel: 'spec.placed', group: 'billing' },
      { channel: 'spec.placed', group: 'shipping' },
      { channel: 'spec.paid', group: 'audit' },
    ]);
    expect((await read('--group', 'shipping')).deadLetters.map((d) => `${d.channel}/${d.group}`)).toEqual([
      'spec.placed/shipping',
    ]);
    // The same event failed in two groups: its id names both; a key names one.
    const placed = all.deadLetters.filter((d) => d.channel === 'spec.placed') as unknown as { id: string }[];
    expect(placed[0]?.id).toBe(placed[1]?.id);
    const show = await wharf('dlq', 'show', placed[0]?.id as string, '--broker', url, '--spec', spec, '--json');
    expect(JSON.parse(show.stdout).deadLetters).toHaveLength(2);
    const one = await wharf('dlq', 'show', `spec.placed/shipping/${placed[0]?.id}`, '--broker', url, '--spec', spec);
    expect(one.code, one.stderr).toBe(0);
    expect(one.stdout).toContain('shipping refuses');

    const bad = await wharf('dlq', 'replay', '--broker', url, '--spec', spec);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('needs ids, filters, or --all');
    const since = await wharf('dlq', 'list', '--broker', url, '--spec', spec, '--since', 'yesterday');
    expect(since.code).toBe(2);
    expect(since.stderr).toContain('--since must be an ISO time');
  });
});

describe('wharf console', () => {
  it('binds 127.0.0.1, prints the address with its token, refuses requests without it, and stops on SIGINT', async () => {
    const bin = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'bin.js');
    const child = spawn(
      process.execPath,
      [bin, 'console', '--broker', 'memory://', '--channel', 'c', '--group', 'g', '--port', '0'],
      { env: { ...process.env, WHARF_BROKER: '' } },
    );
    cleanups.push(async () => {
      child.kill('SIGKILL');
    });
    let stdout = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    await until('the console address', () => /open http:\/\/\S+/.test(stdout), 20_000);
    const address = /open (http:\/\/127\.0\.0\.1:\d+\/\?token=([0-9a-f]{48}))/.exec(stdout);
    expect(address, stdout).not.toBeNull();
    const [, url, token] = address as RegExpExecArray;
    const base = (url as string).replace(/\/\?token=.*$/, '');
    expect((await fetch(`${base}/`)).status).toBe(401);
    expect((await fetch(`${base}/api/dead-letters`)).status).toBe(401);
    const entered = await fetch(url as string, { redirect: 'manual' });
    expect(entered.status).toBe(303);
    expect(entered.headers.get('set-cookie')).toContain('HttpOnly; SameSite=Strict');
    const page = await fetch(`${base}/`, { headers: { cookie: `wharf_console=${token}` } });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<title>Wharf console</title>');
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    child.kill('SIGINT');
    expect(await exited).toBe(0);
  });
});
