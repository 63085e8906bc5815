import { chaosSuite } from './chaos-suite.js';

chaosSuite('nats');
