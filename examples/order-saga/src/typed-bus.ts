import { contractValidator, createTypedBus } from '@wharf/asyncapi';
import type { Bus, EventValidator } from '@wharf/core';
import { contract, type SagaBus } from './contract.js';
import { namespaced } from './topology.js';

/**
 * Binds a bus to the contract's operations. Payloads are checked against the contract on send and
 * on receive; the CloudEvents attributes are set by the services themselves and checked by core,
 * so their schema check is skipped (it costs a third of the saga's CPU time on memory).
 */
export function createSagaBus(bus: Bus, namespace?: string): SagaBus {
  return createTypedBus(bus, namespace ? namespacedContract(namespace) : contract, { headers: false });
}

/** The contract with every channel address in the namespace (see `namespaced`). */
function namespacedContract(namespace: string): typeof contract {
  const channels = Object.fromEntries(
    Object.entries(contract.channels).map(([id, channel]) => [
      id,
      { ...channel, address: namespaced(channel.address, namespace) },
    ]),
  );
  return { ...contract, channels };
}

/** Checks a payload against the contract as the typed bus will on send (attributes are the service's own). */
export const sagaValidator: EventValidator = contractValidator(contract, { headers: false });
