import type { Adapter, Capabilities } from '@wharf/core';
import type { CaseContext } from '../harness.js';
import type { ConformanceOptions } from '../options.js';

/** One rule of the adapter contract, as a test. */
export interface ConformanceCase {
  /** Stable id used in skip lists and reports. */
  readonly id: string;
  /** The rule the case checks, in one sentence. */
  readonly rule: string;
  /** Returns why the case cannot run with these capabilities or this harness, or undefined. */
  readonly requires?: (capabilities: Capabilities, options: ConformanceOptions, probe: Adapter) => string | undefined;
  /** Bound on the case's duration, ms (scaled by `slowness`). Default 60 s. */
  readonly timeoutMs?: number;
  run(t: CaseContext): Promise<void>;
}
