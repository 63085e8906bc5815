import type { ManagedBroker, ManagedRabbitMq } from '../brokers/index.js';
import { natsRequest } from '../brokers/nats-request.js';
import type { BrokerWitness } from '../checker/checker.js';

/**
 * Asks the broker itself what it still holds for the group after a drain that left events missing,
 * so a loss report says whether the broker dropped them or still has them and Wharf did not get them:
 * JetStream consumer info (pending + unacknowledged), RabbitMQ queue depth (ready + unacknowledged).
 * Kafka is not asked (it would need an admin client for committed offsets): `how` says so.
 */
export async function askBroker(broker: ManagedBroker, channel: string, group: string): Promise<BrokerWitness> {
  try {
    if (broker.kind === 'nats') {
      const names = JSON.parse(await natsRequest(broker.port, '$JS.API.STREAM.NAMES', '{}')) as { streams?: string[] };
      const token = channel.split('-').pop()?.toLowerCase() ?? '\u0000';
      const stream = (names.streams ?? []).find((name) => !name.includes('DLQ') && name.toLowerCase().includes(token));
      if (stream === undefined) return { foundInBroker: 0, how: `no JetStream stream for ${channel}` };
      const consumers = JSON.parse(await natsRequest(broker.port, `$JS.API.CONSUMER.NAMES.${stream}`, '{}')) as {
        consumers?: string[];
      };
      const durable = (consumers.consumers ?? []).find((name) => name.includes(group)) ?? group;
      const info = JSON.parse(await natsRequest(broker.port, `$JS.API.CONSUMER.INFO.${stream}.${durable}`, '')) as {
        num_pending?: number;
        num_ack_pending?: number;
        num_redelivered?: number;
        num_waiting?: number;
        delivered?: { stream_seq?: number };
        ack_floor?: { stream_seq?: number };
        config?: { ack_wait?: number; max_ack_pending?: number };
      };
      const held = (info.num_pending ?? 0) + (info.num_ack_pending ?? 0);
      const dlq = (names.streams ?? []).find((name) => name.includes('DLQ') && name.toLowerCase().includes(token));
      const dlqInfo =
        dlq === undefined
          ? undefined
          : (JSON.parse(await natsRequest(broker.port, `$JS.API.STREAM.INFO.${dlq}`, '')) as {
              state?: { messages?: number };
            });
      return {
        foundInBroker: held,
        how: `JetStream consumer ${stream}/${durable}: num_pending ${info.num_pending}, num_ack_pending ${info.num_ack_pending}, num_redelivered ${info.num_redelivered}, num_waiting ${info.num_waiting}, delivered seq ${info.delivered?.stream_seq}, ack floor seq ${info.ack_floor?.stream_seq}, ack_wait ${(info.config?.ack_wait ?? 0) / 1e6} ms; dead-letter stream ${dlq ?? 'none'}: ${dlqInfo?.state?.messages ?? 0} messages`,
      };
    }
    if (broker.kind === 'rabbitmq') {
      const out = await (broker as ManagedRabbitMq).rabbitmqctl(
        'list_queues',
        '-q',
        '--no-table-headers',
        'name',
        'messages_ready',
        'messages_unacknowledged',
        'consumers',
      );
      const rows = out
        .split('\n')
        .map((line) => line.trim().split(/\s+/))
        .filter((row) => row[0]?.includes(channel));
      const held = rows
        .filter((row) => !/retry|dlq|dead/i.test(row[0] ?? ''))
        .reduce((sum, row) => sum + Number(row[1] ?? 0) + Number(row[2] ?? 0), 0);
      return { foundInBroker: held, how: `rabbitmqctl list_queues: ${rows.map((row) => row.join(' ')).join('; ')}` };
    }
    return { foundInBroker: 0, how: 'not asked: Kafka committed offsets need an admin client (see README)' };
  } catch (error) {
    return {
      foundInBroker: 0,
      how: `asking the broker failed: ${error instanceof Error ? error.message : String(error)}`,
    };
  }
}
