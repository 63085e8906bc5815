/**
 * The saga's contract as the services use it: the types generated from specs/orders.asyncapi.yaml
 * (`src/generated`, by `wharf codegen`) and the typed bus over them.
 */
import type { OperationPayload, ReceiveOperation, SendOperation, TypedBus } from '@wharf/asyncapi';
import type { Contract } from './generated/index.js';

export type {
  InventoryRejectedPayload,
  InventoryReleasedPayload,
  InventoryReservedPayload,
  Money,
  NotificationSentPayload,
  OrderCancelledPayload,
  OrderConfirmedPayload,
  OrderLine,
  OrderPlacedPayload,
  PaymentCompletedPayload,
  PaymentFailedPayload,
  StockLine,
} from './generated/index.js';
export { type Contract, contract } from './generated/index.js';

/** The bus every service talks through: `send('<send operation>', payload)`, `on('<receive operation>', …)`. */
export type SagaBus = TypedBus<Contract>;
export type SendOp = SendOperation<Contract>;
export type ReceiveOp = ReceiveOperation<Contract>;
export type PayloadOf<Op extends SendOp | ReceiveOp> = OperationPayload<Contract, Op>;
