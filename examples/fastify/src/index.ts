export {
  CHANNEL,
  createService,
  GROUP,
  type Order,
  type Service,
  type ServiceOptions,
  type ServiceState,
} from './service.js';
