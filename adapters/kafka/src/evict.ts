import type kafkajs from 'kafkajs';

/** Sends LeaveGroup for one member of a group, on behalf of a consumer that died without leaving. */
export type EvictMember = (groupId: string, memberId: string) => Promise<void>;

interface CoordinatorBroker {
  leaveGroup(request: { groupId: string; memberId: string }): Promise<unknown>;
}
interface InternalCluster {
  connect(): Promise<void>;
  disconnect(): Promise<void>;
  findGroupCoordinator(request: { groupId: string }): Promise<CoordinatorBroker>;
}

/**
 * Why this reaches into kafkajs: a consumer that crashed because its broker died (kill -9) could not
 * send LeaveGroup, and the restarted broker reloads it as a member of the group. The replacement
 * consumer joins as a new member, and the coordinator holds the rebalance until the dead member's
 * session expires — a full `sessionTimeout` (6-10 s) of no delivery after the broker is back. Kafka's
 * answer is static membership (`group.instance.id`), which kafkajs does not implement, and its admin
 * client has no "remove members" call. Its cluster, though, has one: the group coordinator's
 * `leaveGroup`, reached through the cluster factory that `Kafka` keeps under a private symbol.
 *
 * Returns `undefined` when this kafkajs has no such factory (a future version), so the caller falls
 * back to waiting out the session; the adapter's broker-kill test proves it works with the pinned one.
 */
export function memberEvictor(kafka: kafkajs.Kafka): EvictMember | undefined {
  const key = Object.getOwnPropertySymbols(kafka).find((s) => s.description === 'private:Kafka:createCluster');
  const factory = key === undefined ? undefined : (kafka as unknown as Record<symbol, unknown>)[key];
  if (typeof factory !== 'function') return undefined;
  const createCluster = factory as (options: { allowAutoTopicCreation: boolean }) => InternalCluster;
  return async (groupId, memberId) => {
    const cluster = createCluster({ allowAutoTopicCreation: false });
    try {
      await cluster.connect();
      const coordinator = await cluster.findGroupCoordinator({ groupId });
      await coordinator.leaveGroup({ groupId, memberId });
    } finally {
      await cluster.disconnect().catch(() => undefined);
    }
  };
}
