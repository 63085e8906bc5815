// The test file `wharf conformance` runs: it loads the adapter named by the URL and hands it to the suite.
import { execSync } from 'node:child_process';
import { runConformance } from '@wharf/conformance';
import { ADAPTER_PACKAGES, loadAdapter, parseBrokerUrl, silentLogger } from '@wharf/core';

const url = process.env.WHARF_CONFORMANCE_URL ?? 'memory://';
const restart = process.env.WHARF_CONFORMANCE_RESTART;
const packageName = ADAPTER_PACKAGES[parseBrokerUrl(url).scheme];
const mod = await import(packageName);
const factory = mod.default ?? mod.createAdapter;
// Adapters may ship a harness for the cases that need the raw client (foreign producers, cleanup, restart).
const harness = typeof mod.conformanceHarness === 'function' ? await mod.conformanceHarness(url) : {};
await loadAdapter({ url, logger: silentLogger });

runConformance({
  name: packageName.replace('@wharf/', ''),
  create: () => factory({ url, logger: silentLogger }),
  ...harness,
  ...(restart ? { restartBroker: async () => void execSync(restart, { stdio: 'inherit' }) } : {}),
});
