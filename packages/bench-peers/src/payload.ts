import { payloadAge, stampPayload } from '@wharf/core';

/**
 * The event body both peers send: a JSON object, which is what NestJS and Moleculer serialise, with
 * the bench's stamped bytes in one string field.
 *
 * The bytes travel as a latin1 string, not as a Buffer (which JSON turns into `{ type, data: [..] }`,
 * ~3.6 bytes per byte) nor base64 (4/3): one character per byte keeps the message body within a few
 * bytes of `size`, so the peers carry the same payload as the bus and the raw baselines.
 */
export interface PeerEvent {
  readonly body: string;
}

/** A fresh event stamped now, `size` payload bytes. */
export function stampEvent(size: number): PeerEvent {
  return { body: Buffer.from(stampPayload(size)).toString('latin1') };
}

/** Milliseconds since the event was stamped (core's `payloadAge` on the decoded bytes). */
export function eventAge(event: PeerEvent): number {
  return payloadAge(Buffer.from(event.body, 'latin1'));
}
