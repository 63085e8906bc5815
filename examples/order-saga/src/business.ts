// The saga's business rules without its transport, for other shapes of the same order flow (the
// synchronous HTTP variant in @wharf/compare): catalogue, scenario, order validation, stock scopes.
export {
  CURRENCY,
  FLAKY_FAILURES,
  type GatewayBehaviour,
  gatewayBehaviour,
  initialStock,
  LIMITED,
  MAGIC_CENTS,
  PRODUCTS,
} from './catalog.js';
export type { Money, OrderLine, OrderPlacedPayload, StockLine } from './contract.js';
export {
  EXPECTED,
  type OrderKind,
  type OrderRequest,
  type Outcome,
  type PlannedOrder,
  planOrders,
} from './scenario.js';
export { stockScope } from './services/inventory.js';
export { buildOrder } from './services/order-request.js';
export { namespaced, OPERATIONS } from './topology.js';
