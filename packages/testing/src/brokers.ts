import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { BrokerStartError } from './errors.js';

/** The brokers `startBroker` knows. */
export type BrokerKind = 'rabbitmq' | 'kafka' | 'nats';

/** Whether a container runtime (Docker, Podman…) can be used, and why (not). */
export interface ContainerRuntime {
  readonly available: boolean;
  readonly reason: string;
}

/** Where a broker comes from. */
export type BrokerSource = 'container' | 'running' | 'script';

/** What is known when choosing a source; each fact is found by `startBroker`, or injected by a test. */
export interface BrokerFacts {
  readonly runtime: ContainerRuntime;
  /** Undefined when a broker answers on the kind's default port; otherwise why not. */
  readonly notRunning: string | undefined;
  /** The project's `scripts/kafka.sh`, when found (Kafka only). */
  readonly kafkaScript: string | undefined;
}

/** The choice, or the reason none is possible. */
export type BrokerSelection =
  | { readonly source: BrokerSource; readonly reason: string }
  | { readonly source: undefined; readonly reason: string };

/** A broker to test against. */
export interface StartedBroker {
  readonly kind: BrokerKind;
  /** Its URL, e.g. `amqp://guest:guest@127.0.0.1:32768`. */
  readonly url: string;
  readonly source: BrokerSource;
  /** Why this source was chosen, in a sentence, e.g. why no container was started. */
  readonly reason: string;
  /** Stops a container started for the test; leaves a broker it found running (or the script's) alone. */
  stop(): Promise<void>;
}

/** Default addresses of the brokers a developer or CI already runs. */
export const DEFAULT_BROKERS: Readonly<Record<BrokerKind, { readonly url: string; readonly port: number }>> = {
  rabbitmq: { url: 'amqp://guest:guest@127.0.0.1:5672', port: 5672 },
  kafka: { url: 'kafka://127.0.0.1:9092', port: 9092 },
  nats: { url: 'nats://127.0.0.1:4222', port: 4222 },
};

/**
 * Chooses where the broker comes from: a container when a runtime is reachable; otherwise the broker
 * already running on its default port; otherwise, for Kafka, the project's script; otherwise nothing,
 * with the reason. Pure, so the choice is tested without a container runtime.
 */
export function selectBrokerSource(kind: BrokerKind, facts: BrokerFacts): BrokerSelection {
  if (facts.runtime.available) return { source: 'container', reason: facts.runtime.reason };
  const { port } = DEFAULT_BROKERS[kind];
  const noContainer = `no container: ${facts.runtime.reason}`;
  if (facts.notRunning === undefined) {
    return {
      source: 'running',
      reason: `${noContainer}; using the ${kind} broker already running on 127.0.0.1:${port}`,
    };
  }
  if (kind === 'kafka' && facts.kafkaScript !== undefined) {
    return {
      source: 'script',
      reason: `${noContainer}; nothing answers on 127.0.0.1:${port} (${facts.notRunning}); starting Kafka with ${facts.kafkaScript} up`,
    };
  }
  return {
    source: undefined,
    reason:
      `cannot get a ${kind} broker — ${noContainer}; and ${facts.notRunning}. ` +
      (kind === 'kafka'
        ? 'Start one (bash scripts/kafka.sh up) or a container runtime.'
        : `Start one on 127.0.0.1:${port} or a container runtime.`),
  };
}

/** The parts of `testcontainers` used here (11.x), so the package stays optional for the types too. */
export interface TestcontainersModule {
  getContainerRuntimeClient(): Promise<unknown>;
  GenericContainer: new (image: string) => ContainerBuilder;
  Wait: { forLogMessage(message: string | RegExp): unknown };
}

interface ContainerBuilder {
  withExposedPorts(...ports: (number | { container: number; host: number })[]): ContainerBuilder;
  withEnvironment(environment: Record<string, string>): ContainerBuilder;
  withCommand(command: string[]): ContainerBuilder;
  // biome-ignore lint/suspicious/noExplicitAny: the wait strategy is testcontainers' own type
  withWaitStrategy(strategy: any): ContainerBuilder;
  start(): Promise<RunningContainer>;
}

interface RunningContainer {
  getHost(): string;
  getMappedPort(port: number): number;
  stop(): Promise<unknown>;
}

/** Options of {@link startBroker}; every fact-finder can be injected (tests do). */
export interface StartBrokerOptions {
  /** Loads `testcontainers`; default a lazy `import('testcontainers')`. */
  importTestcontainers?: () => Promise<TestcontainersModule>;
  /** Default: asks testcontainers for a runtime client. */
  detectRuntime?: () => Promise<ContainerRuntime>;
  /** Default: a TCP connect to 127.0.0.1 on the kind's default port. */
  probe?: (kind: BrokerKind) => Promise<string | undefined>;
  /** The Kafka script; default `scripts/kafka.sh` in the working directory or a parent. `false`: never use it. */
  kafkaScript?: string | false;
  /** Runs the Kafka script (`up`); default `bash <script> up`. */
  runScript?: (script: string) => Promise<void>;
  /** Images for the container path. */
  images?: Partial<Record<BrokerKind, string>>;
  /** Where the reason is told; default `console.warn` for a fallback, nothing for a container. */
  log?: (line: string) => void;
}

/** Images the container path starts (the broker line pinned; not run on our machines, which have no container runtime). */
export const BROKER_IMAGES: Readonly<Record<BrokerKind, string>> = {
  rabbitmq: 'rabbitmq:3.13-alpine',
  kafka: 'apache/kafka:3.9.0',
  nats: 'nats:2.10-alpine',
};

// A variable specifier: bundlers and TypeScript leave the optional package alone until it is used.
const TESTCONTAINERS = 'testcontainers';

/** Asks testcontainers whether a container runtime is reachable; never throws. */
export async function detectContainerRuntime(
  load: () => Promise<TestcontainersModule> = () => import(TESTCONTAINERS) as Promise<TestcontainersModule>,
): Promise<ContainerRuntime> {
  let tc: TestcontainersModule;
  try {
    tc = await load();
  } catch (error) {
    return {
      available: false,
      reason: `the testcontainers package is not installed (npm install -D testcontainers@11.14.0): ${(error as Error).message}`,
    };
  }
  try {
    await tc.getContainerRuntimeClient();
    return { available: true, reason: 'a container runtime is reachable; starting a container with testcontainers' };
  } catch (error) {
    return { available: false, reason: `testcontainers found no container runtime (${(error as Error).message})` };
  }
}

/**
 * A broker for tests: a fresh container through Testcontainers when a container runtime is reachable,
 * otherwise the broker already running on its default port or, for Kafka, the project's
 * `scripts/kafka.sh`, saying why. Throws `BrokerStartError` with the reasons when there is none.
 *
 * @example
 * ```ts
 * const rabbit = await startBroker('rabbitmq');
 * const t = createTestBus({ broker: rabbit.url });
 * // …
 * await rabbit.stop();
 * ```
 */
export async function startBroker(kind: BrokerKind, options: StartBrokerOptions = {}): Promise<StartedBroker> {
  if (!(kind in DEFAULT_BROKERS)) {
    throw new BrokerStartError(`unknown broker kind ${JSON.stringify(kind)}: rabbitmq, kafka or nats`);
  }
  const load = options.importTestcontainers ?? (() => import(TESTCONTAINERS) as Promise<TestcontainersModule>);
  const runtime = await (options.detectRuntime ?? (() => detectContainerRuntime(load)))();
  const needFallback = !runtime.available;
  const notRunning = needFallback ? await (options.probe ?? probeDefault)(kind) : undefined;
  const kafkaScript =
    needFallback && kind === 'kafka' && options.kafkaScript !== false
      ? (options.kafkaScript ?? findUp(join('scripts', 'kafka.sh')))
      : undefined;
  const selection = selectBrokerSource(kind, { runtime, notRunning, kafkaScript });
  if (selection.source === undefined) throw new BrokerStartError(selection.reason);
  const log = options.log ?? ((line: string) => console.warn(line));
  if (selection.source !== 'container') log(`[wharf] [testing] ${selection.reason}`);
  const leave = async (): Promise<void> => {};
  switch (selection.source) {
    case 'container':
      return startContainer(kind, await load(), options.images?.[kind] ?? BROKER_IMAGES[kind], selection.reason);
    case 'running':
      return { kind, url: DEFAULT_BROKERS[kind].url, source: 'running', reason: selection.reason, stop: leave };
    case 'script': {
      await (options.runScript ?? runKafkaScript)(kafkaScript as string);
      return { kind, url: DEFAULT_BROKERS.kafka.url, source: 'script', reason: selection.reason, stop: leave };
    }
  }
}

async function startContainer(
  kind: BrokerKind,
  tc: TestcontainersModule,
  image: string,
  reason: string,
): Promise<StartedBroker> {
  try {
    let container: RunningContainer;
    let url: string;
    if (kind === 'rabbitmq') {
      // The official image lets guest log in from outside the container.
      container = await new tc.GenericContainer(image)
        .withExposedPorts(5672)
        .withWaitStrategy(tc.Wait.forLogMessage('Server startup complete'))
        .start();
      url = `amqp://guest:guest@${container.getHost()}:${container.getMappedPort(5672)}`;
    } else if (kind === 'nats') {
      container = await new tc.GenericContainer(image)
        .withCommand(['-js'])
        .withExposedPorts(4222)
        .withWaitStrategy(tc.Wait.forLogMessage('Server is ready'))
        .start();
      url = `nats://${container.getHost()}:${container.getMappedPort(4222)}`;
    } else {
      // Kafka clients follow the advertised address, so it must be the one the host reaches: a
      // fixed host port chosen now, advertised as such.
      const port = await freePort();
      container = await new tc.GenericContainer(image)
        .withExposedPorts({ container: port, host: port })
        .withEnvironment(kafkaEnvironment(port))
        .withWaitStrategy(tc.Wait.forLogMessage(/Kafka Server started/))
        .start();
      url = `kafka://127.0.0.1:${port}`;
    }
    return { kind, url, source: 'container', reason, stop: async () => void (await container.stop()) };
  } catch (error) {
    throw new BrokerStartError(`starting a ${kind} container (${image}) failed: ${(error as Error).message}`, {
      cause: error,
    });
  }
}

/** A single KRaft node (broker and controller) listening on `port`, settings for fast tests. */
export function kafkaEnvironment(port: number): Record<string, string> {
  return {
    KAFKA_NODE_ID: '1',
    KAFKA_PROCESS_ROLES: 'broker,controller',
    KAFKA_LISTENERS: `PLAINTEXT://:${port},CONTROLLER://:9093`,
    KAFKA_ADVERTISED_LISTENERS: `PLAINTEXT://127.0.0.1:${port}`,
    KAFKA_CONTROLLER_LISTENER_NAMES: 'CONTROLLER',
    KAFKA_LISTENER_SECURITY_PROTOCOL_MAP: 'CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT',
    KAFKA_CONTROLLER_QUORUM_VOTERS: '1@localhost:9093',
    KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR: '1',
    KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR: '1',
    KAFKA_TRANSACTION_STATE_LOG_MIN_ISR: '1',
    KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS: '0',
  };
}

function probeDefault(kind: BrokerKind): Promise<string | undefined> {
  const { port } = DEFAULT_BROKERS[kind];
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    const done = (reason: string | undefined): void => {
      socket.destroy();
      resolve(reason);
    };
    socket.setTimeout(2_000, () => done(`nothing answered on 127.0.0.1:${port} within 2 s`));
    socket.once('connect', () => done(undefined));
    socket.once('error', (error) => done(`nothing answers on 127.0.0.1:${port} (${error.message})`));
  });
}

function findUp(relative: string, from = process.cwd()): string | undefined {
  for (let dir = from; ; dir = dirname(dir)) {
    const candidate = join(dir, relative);
    if (existsSync(candidate)) return candidate;
    if (dirname(dir) === dir) return undefined;
  }
}

function runKafkaScript(script: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [script, 'up'], { stdio: ['ignore', 'inherit', 'inherit'] });
    child.once('error', reject);
    child.once('exit', (code) =>
      code === 0 ? resolve() : reject(new BrokerStartError(`${script} up exited with ${String(code)}`)),
    );
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}
