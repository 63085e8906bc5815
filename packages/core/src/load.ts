import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Adapter, AdapterFactory, AdapterInit } from './adapter.js';
import { AdapterNotInstalledError, InvalidUrlError } from './errors.js';
import { ADAPTER_PACKAGES, parseBrokerUrl } from './url.js';

interface AdapterModule {
  default?: AdapterFactory;
  createAdapter?: AdapterFactory;
}

function isMissing(error: unknown, packageName: string): boolean {
  const code = (error as { code?: string } | undefined)?.code;
  return (
    (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') &&
    String((error as Error).message).includes(packageName)
  );
}

/**
 * Imports an adapter package. Resolution tries this package's own location first and then the
 * application's (the working directory), because with strict package managers (pnpm) an
 * application's adapter is not visible from inside `@wharf/core`.
 */
async function importAdapter(packageName: string, scheme: string): Promise<AdapterModule> {
  try {
    return (await import(packageName)) as AdapterModule;
  } catch (error) {
    if (!isMissing(error, packageName)) throw error;
  }
  try {
    const resolved = createRequire(join(process.cwd(), 'noop.js')).resolve(packageName);
    return (await import(pathToFileURL(resolved).href)) as AdapterModule;
  } catch (error) {
    throw new AdapterNotInstalledError(packageName, scheme, { cause: error });
  }
}

/**
 * Imports the adapter package a broker URL names, for what it exports beside the adapter
 * (`rawBaseline`, `conformanceHarness`). Throws `InvalidUrlError` or `AdapterNotInstalledError`.
 */
export async function importAdapterModule(
  url: string,
  packages: Readonly<Record<string, string>> = ADAPTER_PACKAGES,
): Promise<Record<string, unknown>> {
  const { scheme } = parseBrokerUrl(url);
  const packageName = packages[scheme];
  if (packageName === undefined) throw new InvalidUrlError(`unknown broker scheme "${scheme}:"`);
  return (await importAdapter(packageName, scheme)) as Record<string, unknown>;
}

/** Creates the adapter a broker URL names, loading its package on demand. */
export async function loadAdapter(
  init: AdapterInit & Record<string, unknown>,
  packages: Readonly<Record<string, string>> = ADAPTER_PACKAGES,
): Promise<Adapter> {
  const { scheme } = parseBrokerUrl(init.url);
  const packageName = packages[scheme];
  if (packageName === undefined) throw new InvalidUrlError(`unknown broker scheme "${scheme}:"`);
  const mod = await importAdapter(packageName, scheme);
  const factory = mod.default ?? mod.createAdapter;
  if (typeof factory !== 'function') {
    throw new AdapterNotInstalledError(packageName, scheme, {
      cause: new Error(`${packageName} has no default export that creates an adapter`),
    });
  }
  return factory(init);
}
