import { contractValidator, createTypedBus } from '@wharf/asyncapi';
import type { Bus, EventValidator } from '@wharf/core';
import { contract, type SagaBus } from './contract.js';

/** Binds a bus to the contract's operations. */
export function createSagaBus(bus: Bus): SagaBus {
  return createTypedBus(bus, contract);
}

/** Checks every event the saga publishes or consumes against the contract (core's `validator` option). */
export const sagaValidator: EventValidator = contractValidator(contract);
