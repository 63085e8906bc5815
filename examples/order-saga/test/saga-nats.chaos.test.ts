import { sagaChaosSuite } from './saga-chaos.js';

sagaChaosSuite('nats');
