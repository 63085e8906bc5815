import { sagaChaosSuite } from './saga-chaos.js';

sagaChaosSuite('kafka', 'kafkajs');
