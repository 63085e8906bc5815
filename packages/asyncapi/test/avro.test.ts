import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { brokersRequired, probeBroker } from '@wharf/conformance';
import { type Bus, type CloudEvent, createBus, silentLogger } from '@wharf/core';
import { conformanceHarness as natsHarness } from '@wharf/nats';
import avro from 'avsc';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  CodegenError,
  createTypedBus,
  type GenerateResult,
  generate,
  type RuntimeContract,
  runCodegen,
} from '../src/index.js';
import { generatedDir, here, typecheck } from './helpers.js';

const fixtures = join(here, 'fixtures/fidelity/avro');
const outDir = join(generatedDir, 'fidelity-avro');
const userSchema = JSON.parse(readFileSync(join(fixtures, 'user.avsc'), 'utf8')) as { fields: unknown[] };
const addressSchema = JSON.parse(readFileSync(join(fixtures, 'address.avsc'), 'utf8')) as object;

let result: GenerateResult;
let contract: RuntimeContract;
/** The user schema as a plain avsc reader without Wharf's logical types: what a foreign consumer sees. */
let plainUser: avro.Type;
let examples: Record<string, unknown>;

beforeAll(async () => {
  result = await generate(join(fixtures, 'users.asyncapi.yaml'), { outDir });
  contract = ((await import(join(outDir, 'contract.ts'))) as { contract: RuntimeContract }).contract;
  const registry = {};
  avro.Type.forSchema(addressSchema as avro.Schema, { registry });
  const inlined = JSON.parse(
    JSON.stringify(userSchema).replace('{"$ref":"./address.avsc"}', '"com.example.common.Address"'),
  );
  plainUser = avro.Type.forSchema(inlined, { registry, wrapUnions: 'never' });
  examples = Object.fromEntries(
    (result.model.messages.find((m) => m.id === 'UserSignedUp')?.examples ?? []).map((e) => [e.label, e.payload]),
  );
});

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(closers.splice(0).map((close) => close()));
});

async function until(check: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('Avro payloads: codegen', () => {
  it('emits TypeScript for records, enums, unions, arrays, maps, fixed, logical and named types, and it compiles', () => {
    const types = result.files.find((f) => f.path.endsWith('types.ts'))?.content ?? '';
    expect(types).toContain('export type User = {');
    expect(types).toContain('export type Status = "ACTIVE" | "SUSPENDED";'); // enum
    expect(types).toContain('email?: string | null;'); // nullable union -> optional
    expect(types).toContain('contact: string | Phone;'); // other unions
    expect(types).toContain('tags: string[];'); // array
    expect(types).toContain('attributes: { [key: string]: string };'); // map
    expect(types).toContain('checksum: Md5;'); // fixed
    expect(types).toMatch(/decimal\(10, 2\), as a decimal string \*\/\n {2}balance: string;/);
    expect(types).toMatch(/uuid \*\/\n {2}id: string;/);
    expect(types).toMatch(/date: days since 1970-01-01 \*\/\n {2}birthday: number;/);
    expect(types).toMatch(/time-millis: milliseconds after midnight \*\/\n {2}wakeUp: number;/);
    expect(types).toMatch(/timestamp-millis: milliseconds since the Unix epoch \*\/\n {2}createdAt: number;/);
    // Named types with namespaces, one from a referenced .avsc file, one referenced by full name.
    expect(types).toContain('Avro record `com.example.common.Address`.');
    expect(types).toContain('address: Address;');
    expect(types).toContain('previousAddress?: Address | null;');
    expect(types).toContain('friends: User[];'); // recursion by name
    expect(types).toContain('export type Ping = {'); // avro+yaml
    expect(types.match(/export type User = /g)).toHaveLength(1); // one type for one full name
    expect(typecheck([join(outDir, 'index.ts'), join(here, 'fixtures/avro-usage.ts')])).toEqual([]);
  });

  it('validates the JSON form: every example passes, and each kind of mistake is caught at its path', () => {
    expect(result.exampleFailures).toEqual([]);
    const validate = contract.messages.UserSignedUp?.payload;
    if (!validate) throw new Error('no validator');
    const ok = examples.minimal as Record<string, unknown>;
    expect(validate(ok)).toBe(true);
    expect(validate(examples['with everything'])).toBe(true);
    const wrong: [string, Record<string, unknown>][] = [
      ['/status', { status: 'GONE' }],
      ['/balance', { balance: '1.234' }], // scale 2
      ['/balance', { balance: 12.5 }],
      ['/checksum', { checksum: 'abc' }], // fixed size 4
      ['/age', { age: 2 ** 31 }], // int range
      ['/id', { id: 'not-a-uuid' }],
      ['/address/country', { address: { street: 's', city: 'c', country: 'XX' } }],
      ['', { nickname: 'extra' }], // records are closed
      ['/contact', { contact: { phone: 1 } }],
      ['/attributes/a', { attributes: { a: 1 } }],
    ];
    for (const [path, change] of wrong) {
      expect(validate({ ...ok, ...change }), JSON.stringify(change)).toBe(false);
      expect(
        validate.errors?.some((e) => e.instancePath === path || e.instancePath.startsWith(`${path}/`)),
        path,
      ).toBe(true);
    }
    const { name: _name, ...missing } = ok;
    expect(validate(missing)).toBe(false);
  });

  it('refuses an invalid Avro schema, an ambiguous union sent as binary, and Avro binary without an Avro schema, with file:line', async () => {
    const bad = (name: string) => join(here, 'fixtures/bad', name);
    const run = async (name: string): Promise<string> => {
      const err: string[] = [];
      const code = await runCodegen([bad(name), '--out', join(generatedDir, 'bad')], {
        out: () => {},
        err: (l) => err.push(l),
      });
      expect(code).toBe(1);
      return err.join('\n');
    };
    // Line 14 is the field whose type is misspelt.
    expect(await run('avro-invalid.yaml')).toMatch(
      /avro-invalid\.yaml:14:\d+ error \[avro-schema\] .*"Broken" is invalid: undefined type name: strnig/,
    );
    expect(await run('avro-binary-ambiguous.yaml')).toMatch(
      /avro-binary-ambiguous\.yaml:\d+:\d+ error \[avro-schema\] message "Shape" is sent as Avro binary.*ambiguous/,
    );
    expect(await run('avro-binary-json-schema.yaml')).toMatch(
      /avro-binary-json-schema\.yaml:8:\d+ error \[unsupported-content-type\]/,
    );
    const error = await generate(bad('avro-invalid.yaml'), { outDir: join(generatedDir, 'bad') }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(CodegenError);
  });
});

describe('Avro in a template fixture (AsyncAPI 2.0, schemaFormat on the message)', () => {
  it('generates types, and the parser\'s "no schema parser registered" warning is not passed on', async () => {
    const doc = join(here, 'fixtures/corpus/templates-java-spring-cloud-stream-0.13.4/kafka-avro.yaml');
    const generated = await generate(doc, { outDir: join(generatedDir, 'fidelity-avro-template') });
    const types = generated.files.find((f) => f.path.endsWith('types.ts'))?.content ?? '';
    expect(types).toContain('Avro record `userpublisher.User`.');
    expect(types).toMatch(/displayName: string;\n {2}email: string;\n {2}age: number;/);
    expect(generated.warnings.map((w) => w.message).join('\n')).not.toMatch(/No schema parser registered/);
  });
});

describe('Avro binary codec', () => {
  it('round-trips the JSON form through real Avro binary that a plain avsc reader decodes', () => {
    const codec = contract.messages.UserSignedUpBinary?.codec;
    if (!codec) throw new Error('no codec');
    expect(codec.contentType).toBe('application/avro');
    const full = examples['with everything'] as Record<string, unknown>;
    const body = codec.encode({ ...full, balance: '123.45' });
    const foreign = plainUser.fromBuffer(Buffer.from(body)) as Record<string, unknown>;
    expect(foreign.balance).toEqual(Buffer.from([0x30, 0x39])); // 12345, two's complement
    expect(foreign.credit).toEqual(Buffer.from('000000e8d4a50fff', 'hex')); // 999999999999, 8 bytes
    expect(foreign.checksum).toEqual(Buffer.from([0x00, 0xff, 0x10, 0x61]));
    expect(foreign.previousAddress).toMatchObject({ city: 'Amsterdam' });
    expect(codec.decode(body)).toEqual({ ...full, balance: '123.45' });
    // Absent nullable fields travel as null; negative decimals keep their sign and scale.
    const minimal = examples.minimal as Record<string, unknown>;
    expect(codec.decode(codec.encode(minimal))).toEqual({
      ...minimal,
      email: null,
      avatar: null,
      previousAddress: null,
    });
    expect((codec.decode(codec.encode({ ...minimal, balance: '-0.01' })) as { balance: string }).balance).toBe('-0.01');
    expect(() => codec.decode(new Uint8Array([0xff, 0xff, 0xff]))).toThrow();
  });
});

const BROKERS = [
  { name: 'memory', url: 'memory://', probe: undefined },
  { name: 'nats', url: process.env.WHARF_NATS_URL ?? 'nats://127.0.0.1:4222', probe: 4222 },
] as const;

describe.each(BROKERS)('Avro binary end to end on $name', (broker) => {
  let cleanup: ((channel: string, groups: readonly string[]) => Promise<void>) | undefined;
  afterAll(() => {
    cleanup = undefined;
  });

  it('the typed bus sends Avro bytes on the wire and hands the handler the typed JSON form; bad bytes are dead-lettered', async (ctx) => {
    if (broker.probe !== undefined) {
      const host = new URL(broker.url).hostname;
      const unavailable = await probeBroker(broker.name, host, broker.probe);
      if (unavailable !== undefined) {
        if (brokersRequired()) throw new Error(unavailable);
        ctx.skip(unavailable);
      }
      cleanup = (channel, groups) => natsHarness(broker.url).cleanup(channel, groups);
    }
    const suffix = randomBytes(4).toString('hex');
    // Same contract, a channel of this test's own: the typed bus maps operations to addresses.
    const channel = `users.signedup.avro.${suffix}`;
    const own: RuntimeContract = {
      ...contract,
      channels: {
        ...contract.channels,
        usersBinary: { address: channel, parameters: [], messages: ['UserSignedUpBinary'] },
      },
    };
    const bus: Bus = createBus({ url: broker.url, logger: silentLogger });
    closers.push(async () => {
      await bus.close();
      await cleanup?.(channel, ['users', 'wire']);
    });
    // Typed use is checked at compile time by fixtures/avro-usage.ts; here the contract is loaded at runtime.
    const users = createTypedBus(bus, own) as unknown as {
      send(operation: string, payload: unknown): Promise<CloudEvent>;
      on(operation: string, options: { group: string }, handler: (event: CloudEvent) => void): Promise<unknown>;
    };
    await bus.declare(channel, { groups: ['users', 'wire'] });
    const received: CloudEvent[] = [];
    const wire: CloudEvent[] = [];
    await users.on('onUserBinary', { group: 'users' }, (event) => {
      received.push(event);
    });
    await bus.subscribe(channel, { group: 'wire' }, (event) => {
      wire.push(event);
    });
    const payload = examples['with everything'];
    const sent = await users.send('sendUserBinary', payload);
    expect(sent.data).toEqual(payload);
    await until(() => received.length === 1 && wire.length === 1);
    expect(received[0]?.type).toBe('UserSignedUpBinary');
    expect(received[0]?.data).toEqual(payload);
    // What the broker carried: Avro binary, readable by any Avro consumer.
    expect(wire[0]?.datacontenttype).toBe('application/avro');
    expect(wire[0]?.data).toBeInstanceOf(Uint8Array);
    expect((plainUser.fromBuffer(Buffer.from(wire[0]?.data as Uint8Array)) as { name: string }).name).toBe('Grace');

    // A foreign producer's bytes that are not this schema never reach the handler.
    await bus.publish(channel, {
      type: 'UserSignedUpBinary',
      data: new Uint8Array([1, 2, 3]),
      datacontenttype: 'application/avro',
    });
    await until(async () => (await bus.listDeadLetters(channel, 'users')).length === 1);
    const [dead] = await bus.listDeadLetters(channel, 'users');
    expect(dead?.info?.reason).toBe('invalid');
    expect(dead?.info?.errorMessage).toMatch(/not application\/avro/);
    expect(received).toHaveLength(1);
  });
});
