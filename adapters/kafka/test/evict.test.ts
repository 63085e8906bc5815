import { strict as assert } from 'node:assert';
import kafkajs from 'kafkajs';
import { afterAll, describe, it } from 'vitest';
import { memberEvictor } from '../src/evict.js';
import { KAFKA_URL, rawClient, skipKafka } from './helpers.js';

const brokers = KAFKA_URL.replace(/^kafkas?:\/\//, '').split(',');
const run = `evict-${Date.now().toString(36)}`;
const topic = `wharf-test-${run}`;
const groupId = `wharf-test-${run}`;

describe.skipIf(skipKafka)(
  'kafka: evicting the member of a crashed consumer (kafkajs internals, pinned version)',
  () => {
    const kafka = new kafkajs.Kafka({ brokers, clientId: 'wharf-evict-test', logLevel: kafkajs.logLevel.NOTHING });
    const admin = kafka.admin();

    afterAll(async () => {
      await admin.deleteGroups([groupId]).catch(() => undefined);
      await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
      await admin.disconnect();
    });

    it('removes the member from the group at once (its session would otherwise hold the next join)', async () => {
      const evict = memberEvictor(kafka);
      assert.ok(evict, 'the pinned kafkajs keeps its cluster factory where evict.ts looks for it');
      await admin.connect();
      // Through the adapter's admin, which retries: kafkajs' waitForLeaders gives up on a KRaft broker
      // that answers UNKNOWN_TOPIC_OR_PARTITION for a moment after the create (seen in CI).
      await (await rawClient().admin).createTopics([{ topic, partitions: 1, replicationFactor: -1, configs: {} }]);
      // A long session, so only the eviction can remove it within this test.
      const consumer = kafka.consumer({ groupId, sessionTimeout: 60_000, heartbeatInterval: 20_000 });
      const joined = new Promise<string>((resolve) =>
        consumer.on(consumer.events.GROUP_JOIN, (e) => resolve(e.payload.memberId)),
      );
      try {
        await consumer.connect();
        await consumer.subscribe({ topics: [topic] });
        await consumer.run({ eachMessage: async () => {} });
        const memberId = await joined;
        const members = async (): Promise<string[]> =>
          (await admin.describeGroups([groupId])).groups[0]?.members.map((m) => m.memberId) ?? [];
        assert.ok((await members()).includes(memberId), 'a member before the eviction');

        await evict(groupId, memberId);
        assert.ok(!(await members()).includes(memberId), 'gone right after the eviction');
        // An unknown member is reported as such (the adapter treats it as "already left").
        await assert.rejects(evict(groupId, memberId), (e: { type?: string }) => e.type === 'UNKNOWN_MEMBER_ID');
      } finally {
        await consumer.disconnect();
      }
    });
  },
);
