import { type CloudEvent, type ContractIssue, ContractViolationError } from '@wharf/core';
import { OPERATIONS } from './topology.js';
import { sagaValidator } from './typed-bus.js';

/** The contract's objections to an `OrderPlaced` payload (empty when valid), as the bus would raise them on publish. */
export function validateOrderPlaced(payload: unknown): ContractIssue[] {
  const { channel, type } = OPERATIONS.placeOrder;
  const probe = { specversion: '1.0', id: 'probe', source: 'urn:wharf:order-service', type, data: payload };
  try {
    sagaValidator.validate('publish', channel, probe as CloudEvent);
    return [];
  } catch (error) {
    if (error instanceof ContractViolationError) return [...error.issues];
    throw error;
  }
}
