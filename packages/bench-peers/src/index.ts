export { parseInvocation, usage } from './args.js';
export { type CompareOptions, type Comparison, comparePeer, type Ratios, type Side } from './compare.js';
export { PeerBenchUsageError } from './errors.js';
export { benchMoleculerNats, moleculerChannelName, moleculerStreamName } from './moleculer-nats.js';
export { benchNestRmq, type NestRmqSettings, nestQueueName } from './nest-rmq.js';
export { eventAge, type PeerEvent, stampEvent } from './payload.js';
export { isPeerName, PEER_NAMES, PEERS, type Peer, type PeerName, type PeerSettings } from './peers.js';
export { formatComparison } from './report.js';
