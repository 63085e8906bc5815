import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { InstanceStats } from './host.js';

// Each service instance of a multi-process run writes its counters to <stateDir>/stats/<service>-<pid>-<n>.json.

/** True unless the process is known to be gone (its counters are from an earlier run). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Service instances of other processes, still running, that keep their counters in `dir`. */
export function liveInstances(dir: string): number {
  return readStats(dir).filter((s) => Number(s.instance.split('-').at(-2)) !== process.pid).length;
}

export function readStats(dir: string): InstanceStats[] {
  let names: string[] = [];
  try {
    // Files are named <service>-<pid>-<n>.json; a dead process's counters belong to an earlier run.
    names = readdirSync(dir).filter((name) => name.endsWith('.json') && alive(Number(name.split('-').at(-2))));
  } catch {
    return [];
  }
  return names.flatMap((name) => {
    try {
      return [JSON.parse(readFileSync(join(dir, name), 'utf8')) as InstanceStats];
    } catch {
      return [];
    }
  });
}
