import { describe, expect, it } from 'vitest';
import { MemoryDedupStore } from '../src/index.js';

describe('MemoryDedupStore', () => {
  it('remembers per group', () => {
    const store = new MemoryDedupStore();
    store.add('g1', 'a');
    expect(store.has('g1', 'a')).toBe(true);
    expect(store.has('g2', 'a')).toBe(false);
  });

  it('forgets the least recently used entry past its bound', () => {
    const store = new MemoryDedupStore({ maxEntries: 2 });
    store.add('g', 'a');
    store.add('g', 'b');
    expect(store.has('g', 'a')).toBe(true);
    store.add('g', 'c');
    expect(store.has('g', 'b')).toBe(false);
    expect(store.has('g', 'a')).toBe(true);
    expect(store.size).toBe(2);
  });

  it("bounds each group on its own, so a busy group does not evict another group's keys", () => {
    const store = new MemoryDedupStore({ maxEntries: 4 });
    store.add('quiet', 'q');
    for (let i = 0; i < 100; i++) store.add('busy', `k${i}`);
    expect(store.has('quiet', 'q')).toBe(true);
    expect(store.has('busy', 'k99')).toBe(true);
    expect(store.has('busy', 'k0')).toBe(false);
    expect(store.size).toBeLessThanOrEqual(1 + 4);
  });

  it('expires entries after their TTL', () => {
    let now = 0;
    const store = new MemoryDedupStore({ ttlMs: 100, now: () => now });
    store.add('g', 'a');
    now = 99;
    expect(store.has('g', 'a')).toBe(true);
    now = 200;
    expect(store.has('g', 'a')).toBe(false);
  });

  it('stays within its bound under a long stream and keeps the most recent keys', () => {
    const store = new MemoryDedupStore({ maxEntries: 1_000 });
    for (let i = 0; i < 50_000; i++) store.add('g', `k${i}`);
    expect(store.size).toBeLessThanOrEqual(1_000);
    expect(store.has('g', 'k49999')).toBe(true);
    expect(store.has('g', 'k49500')).toBe(true);
    expect(store.has('g', 'k1')).toBe(false);
  });
});
