import { WharfError } from '@wharf/core';
import { UsageError } from './args.js';
import { bench, benchUsage } from './commands/bench.js';
import { brokers, brokersUsage } from './commands/brokers.js';
import { chaos, chaosUsage } from './commands/chaos.js';
import { codegen, codegenUsage } from './commands/codegen.js';
import { compare, compareUsage } from './commands/compare.js';
import { conformance, conformanceUsage } from './commands/conformance.js';
import { consoleCommand, consoleUsage } from './commands/console.js';
import { dlq, dlqUsage } from './commands/dlq.js';
import { postgres, postgresUsage } from './commands/postgres.js';
import { saga, sagaUsage } from './commands/saga.js';
import { scale, scaleUsage } from './commands/scale.js';
import { status, statusUsage } from './commands/status.js';
import { type Output, stdio } from './output.js';

type Command = { run: (argv: string[], output: Output) => Promise<number>; usage: string; summary: string };

const COMMANDS: Record<string, Command> = {
  demo: {
    run: (argv, o) => saga(argv, o, true),
    usage: sagaUsage,
    summary: 'run the order saga on the embedded memory broker',
  },
  saga: {
    run: (argv, o) => saga(argv, o),
    usage: sagaUsage,
    summary: 'run the order saga on any broker, with invariants',
  },
  conformance: { run: conformance, usage: conformanceUsage, summary: 'run the cross-broker conformance suite' },
  codegen: { run: codegen, usage: codegenUsage, summary: 'generate types and validators from an AsyncAPI document' },
  console: {
    run: consoleCommand,
    usage: consoleUsage,
    summary: 'serve a web page to see, replay and purge dead letters',
  },
  dlq: { run: dlq, usage: dlqUsage, summary: 'list, show, replay or purge dead letters' },
  status: { run: status, usage: statusUsage, summary: "show groups' backlog: ready, in flight, delayed, dead letters" },
  scale: {
    run: scale,
    usage: scaleUsage,
    summary: 'replicas a group needs for its backlog (ceil(backlog × 1.2 / capacity))',
  },
  compare: {
    run: compare,
    usage: compareUsage,
    summary: 'measure the order flow over synchronous HTTP and over the bus, side by side',
  },
  bench: { run: bench, usage: benchUsage, summary: 'measure the bus against the raw client' },
  brokers: { run: brokers, usage: brokersUsage, summary: 'start, stop or check local brokers' },
  chaos: { run: chaos, usage: chaosUsage, summary: 'inject broker faults and check nothing is lost' },
  postgres: {
    run: (argv, o) => postgres(argv, o),
    usage: postgresUsage,
    summary: 'apply the outbox/inbox migrations or run an outbox relay',
  },
};

export const usage = `wharf — contract-first, broker-agnostic event bus

Usage: wharf <command> [options]

${Object.entries(COMMANDS)
  .map(([name, c]) => `  ${name.padEnd(12)} ${c.summary}`)
  .join('\n')}

The broker is a URL: memory://, amqp://user:pass@host:5672/vhost, kafka://host:9092, nats://host:4222
(--broker, or WHARF_BROKER). Run wharf <command> --help for a command's options.`;

/** Runs the CLI; resolves with the process exit code. */
export async function main(argv: string[], output: Output = stdio): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    output.out(usage);
    return name === undefined ? 2 : 0;
  }
  const command = COMMANDS[name];
  if (!command) {
    output.err(`wharf: unknown command "${name}"\n\n${usage}`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    output.out(command.usage);
    return 0;
  }
  try {
    return await command.run(rest, output);
  } catch (error) {
    if (error instanceof UsageError) {
      output.err(`wharf ${name}: ${error.message.replace('[wharf] [cli] ', '')}\n\nUsage: ${command.usage}`);
      return 2;
    }
    if (error instanceof WharfError) {
      output.err(error.message);
      return 1;
    }
    output.err(`wharf ${name} failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    return 1;
  }
}
