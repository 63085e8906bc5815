import { describe, expect, it } from 'vitest';
import { wharf } from './wharf.js';

describe('wharf', () => {
  it('chaos refuses a broker it cannot run privately and an unknown scenario, with usage', async () => {
    const memory = await wharf('chaos', '--broker', 'memory://', '--scenario', 'all');
    expect(memory.code).toBe(2);
    expect(memory.stderr).toContain('not a broker chaos can run privately');
    const unknown = await wharf('chaos', '--broker', 'nats', '--scenario', 'nope');
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown scenario "nope"');
    expect(memory.stdout).toBe('');
  });

  it('prints usage and fails on unknown commands', async () => {
    const help = await wharf('--help');
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('conformance');
    const unknown = await wharf('frobnicate');
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown command "frobnicate"');
  });

  it('reports bad URLs and bad flags as usage errors, never with a password', async () => {
    const scheme = await wharf('dlq', 'list', '--broker', 'redis://u:hunter2@h', '--channel', 'c', '--group', 'g');
    expect(scheme.code).toBe(1);
    expect(scheme.stderr).toContain('unknown broker scheme "redis:"');
    const flag = await wharf('bench', '--events', '0');
    expect(flag.code).toBe(2);
    expect(flag.stderr).toContain('--events must be a positive integer');
    const malformed = await wharf('bench', '--broker', 'amqp://u:hunter2@bad host');
    expect(malformed.stderr).toContain('***');
    expect(malformed.stderr).not.toContain('hunter2');
  });

  it('runs the conformance suite on memory and reports JSON', async () => {
    const run = await wharf('conformance', '--broker', 'memory://', '--json');
    expect(run.code, run.stderr).toBe(0);
    const report = JSON.parse(run.stdout) as {
      passed: number;
      failed: number;
      skipped: { id: string; reason: string }[];
      cases: { id: string }[];
    };
    expect(report.failed).toBe(0);
    // Only raw mode is skipped: the memory broker has no foreign producers to adopt.
    expect(report.skipped.map((s) => s.id)).toEqual([
      'raw-wrap',
      'raw-retry',
      'raw-dead-letter-replay',
      'raw-undecodable',
      'raw-invalid',
    ]);
    for (const { reason } of report.skipped) expect(reason).toMatch(/no raw mode/);
    expect(report.passed).toBe(report.cases.length - report.skipped.length);
    expect(report.cases.map((c) => c.id)).toContain('retries-exhausted');
  }, 120_000);

  it('benchmarks the memory broker against its raw baseline', async () => {
    const run = await wharf('bench', '--broker', 'memory://', '--events', '2000', '--rounds', '1', '--json');
    expect(run.code, run.stderr).toBe(0);
    const result = JSON.parse(run.stdout) as {
      broker: string;
      bus: { throughput: number };
      raw: { throughput: number };
      ratio: { throughput: number };
    };
    expect(result.broker).toBe('memory://');
    expect(result.bus.throughput).toBeGreaterThan(0);
    expect(result.raw.throughput).toBeGreaterThan(0);
    expect(result.ratio.throughput).toBeCloseTo(result.bus.throughput / result.raw.throughput, 1);
  }, 60_000);

  it('soaks the bus on memory, sampling memory and reporting the slopes', async () => {
    const run = await wharf(
      'bench',
      '--broker',
      'memory://',
      '--soak',
      '3s',
      '--sample-every',
      '500ms',
      '--events',
      '500',
      '--json',
    );
    expect(run.code, run.stderr).toBe(0);
    const result = JSON.parse(run.stdout) as {
      broker: string;
      seconds: number;
      events: number;
      gcBeforeSample: boolean;
      samples: { atS: number; rssMb: number; heapUsedMb: number; externalMb: number; events: number }[];
      slopes: { rssMbPerMin: number; heapUsedMbPerMin: number };
      lateSlopes: { rssMbPerMin: number; heapUsedMbPerMin: number };
    };
    expect(result.broker).toBe('memory://');
    expect(result.seconds).toBeGreaterThanOrEqual(3);
    expect(result.gcBeforeSample).toBe(true);
    // One at the start, one per 500 ms, one at the end: the timer fires while memory:// runs.
    expect(result.samples.length).toBeGreaterThanOrEqual(5);
    expect(result.samples[0]?.events).toBe(0);
    const last = result.samples.at(-1);
    expect(last?.events).toBe(result.events);
    expect(result.events % 500).toBe(0);
    for (const s of result.samples) {
      expect(s.rssMb).toBeGreaterThan(0);
      expect(s.heapUsedMb).toBeGreaterThan(0);
      expect(s.externalMb).toBeGreaterThan(0);
    }
    for (const slopes of [result.slopes, result.lateSlopes]) {
      expect(Number.isFinite(slopes.rssMbPerMin)).toBe(true);
      expect(Number.isFinite(slopes.heapUsedMbPerMin)).toBe(true);
    }
    // Progress lines go to stderr with --json, so stdout stays one object.
    expect(run.stderr).toContain('rss MB');
  }, 60_000);

  it('refuses a soak without a unit or a sampling interval without a soak', async () => {
    const bare = await wharf('bench', '--soak', '10');
    expect(bare.code).toBe(2);
    expect(bare.stderr).toContain('--soak must be a duration such as 10m');
    const lonely = await wharf('bench', '--sample-every', '1s');
    expect(lonely.code).toBe(2);
    expect(lonely.stderr).toContain('--sample-every needs --soak');
  });

  it('lists an empty dead-letter destination', async () => {
    const run = await wharf('dlq', 'list', '--broker', 'memory://', '--channel', 'c', '--group', 'g', '--json');
    expect(run.code, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ targets: [{ channel: 'c', group: 'g' }], deadLetters: [] });
  });
});
