import { chaosSuite } from './chaos-suite.js';

// Every scenario again on the Kafka adapter's second client, kafkajs (kafka.chaos.test.ts runs the
// default, @platformatic/kafka): both clients pass the chaos scenarios on every run (issue 21).
chaosSuite('kafka', { client: 'kafkajs' });
