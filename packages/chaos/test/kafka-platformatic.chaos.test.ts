import { chaosSuite } from './chaos-suite.js';

// Every scenario again on the Kafka adapter's second client (issue 21: both clients pass the chaos
// scenarios on every run).
chaosSuite('kafka', { client: 'platformatic' });
