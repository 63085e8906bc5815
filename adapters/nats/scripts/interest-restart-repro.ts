// Reproduces, with raw nats.js and no Wharf, how nats-server 2.9.10 loses events of an interest-retention
// stream when it restarts (SIGTERM, as `start-stop-daemon --stop` sends).
//
//   npx tsx --conditions wharf-source adapters/nats/scripts/interest-restart-repro.ts [rounds] [interest|limits]
//
// RESTARTS THE LOCAL nats-server (127.0.0.1:4222) once per round with the test suites' restartServer (the
// command in /work/shared/SERVICES.md), which starts it again even on failure. Each round: a stream with two durable pull consumers, "worker"
// (consumes and acks) and "witness" (took one message and never acks: nothing may leave the stream on its
// account). A publisher sends one message every 2 ms with a Nats-Msg-Id, retrying failures with the same id,
// through a server restart. Afterwards every PubAck'd sequence is looked up in the stream. Seen on 2.9.10
// with interest retention (none with limits retention):
// - "PubAck'd, never stored": sequences acknowledged in the ~100-200 ms after SIGTERM, which the stream then
//   reports as deleted (the worker never received them): while shutting down, the server stops a stream's
//   consumers before the stream stops taking messages, and with no consumer left an interest stream skips
//   the message but still answers with a PubAck carrying its sequence (and records its Nats-Msg-Id);
// - "witness moved": the witness comes back from the restart with its delivered/ack floor moved up to about
//   where the stream was at the restart, and the messages it never received are gone (the worker acked them).
import {
  AckPolicy,
  DeliverPolicy,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
} from '@nats-io/jetstream';
import { connect, headers } from '@nats-io/transport-node';
import { restartServer } from '../test/helpers.js';

const rounds = Number(process.argv[2] ?? 5);
const retention = process.argv[3] === 'limits' ? RetentionPolicy.Limits : RetentionPolicy.Interest;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

let lostTotal = 0;
let movedTotal = 0;
for (let round = 0; round < rounds; round++) {
  const options = { servers: '127.0.0.1:4222', maxReconnectAttempts: -1, reconnectTimeWait: 250 };
  const pubNc = await connect(options);
  const subNc = await connect(options);
  const jsm = await jetstreamManager(pubNc);
  const stream = `REPRO_${Date.now()}_${round}`;
  const subject = `repro.${stream}`;
  await jsm.streams.add({ name: stream, subjects: [subject], storage: StorageType.File, retention });
  for (const name of ['worker', 'witness']) {
    await jsm.consumers.add(stream, {
      durable_name: name,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.New,
    });
  }
  await jetstream(pubNc).publish(subject, new TextEncoder().encode('first'));
  const first = await (await jetstream(subNc).consumers.get(stream, 'witness')).next({ expires: 2000 });
  if (!first) throw new Error('the witness received nothing');
  const received = new Set<number>();
  const worker = await jetstream(subNc).consumers.get(stream, 'worker');
  const consuming = await worker.consume({
    max_messages: 4,
    callback: (m) => {
      received.add(m.seq);
      m.ack();
    },
  });
  const js = jetstream(pubNc, { timeout: 2000 });
  const acked = new Map<number, { id: string; msAfterStop: number | undefined }>();
  let stopAt = 0;
  let publishing = true;
  const publisher = (async () => {
    for (let n = 0; publishing; n++) {
      const id = `m-${n}`;
      for (;;) {
        const h = headers();
        h.set('Nats-Msg-Id', id);
        try {
          const ack = await js.publish(subject, new TextEncoder().encode(id), { headers: h });
          if (!ack.duplicate) acked.set(ack.seq, { id, msAfterStop: stopAt ? Date.now() - stopAt : undefined });
          break;
        } catch {
          await sleep(100);
        }
      }
      await sleep(2);
    }
  })();
  await sleep(500);
  stopAt = Date.now();
  await restartServer(500);
  await sleep(2500);
  publishing = false;
  await publisher;
  const state = (await jsm.streams.info(stream, { deleted_details: true })).state;
  const witness = await jsm.consumers.info(stream, 'witness');
  const lost: { seq: number; id: string; msAfterStop: number | undefined; workerReceived: boolean }[] = [];
  for (const [seq, v] of acked) {
    if (!(await jsm.streams.getMessage(stream, { seq }).catch(() => null))) {
      lost.push({ seq, ...v, workerReceived: received.has(seq) });
    }
  }
  const neverStored = lost.filter((l) => !l.workerReceived);
  const moved = witness.delivered.stream_seq > 1;
  lostTotal += neverStored.length;
  if (moved) movedTotal++;
  console.log(
    `round ${round} (${retention}): ${acked.size} PubAcks; stream ${state.messages} msgs, first ${state.first_seq}, ` +
      `last ${state.last_seq}, deleted ${JSON.stringify(state.deleted ?? [])}; witness delivered ` +
      `${witness.delivered.consumer_seq}/${witness.delivered.stream_seq}, ack floor ${witness.ack_floor.stream_seq}` +
      `${moved ? ' (MOVED)' : ''}; PubAck'd, never stored: ${JSON.stringify(neverStored)}; ` +
      `gone though the witness never acked them: ${lost.length}`,
  );
  await consuming.close().catch(() => undefined);
  await jsm.streams.delete(stream);
  await pubNc.close();
  await subNc.close();
}
console.log(`${retention}: ${lostTotal} PubAck'd but never stored; witness moved in ${movedTotal} of ${rounds} rounds`);
