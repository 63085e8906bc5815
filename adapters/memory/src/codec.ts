import { type Decoded, decodeStructured, isStructured, UndecodableMessageError } from '@wharf/core';

/** A message as a foreign producer puts it on the memory broker: headers, content type and bytes. */
export interface ForeignMemoryMessage {
  readonly body: Uint8Array;
  readonly headers?: Readonly<Record<string, string>>;
  readonly contentType?: string;
}

const PREFIX = 'ce_';

/**
 * Foreign messages follow the Kafka binding's shape (`ce_` headers plus `content-type`), or the
 * structured mode. Events from a Wharf bus are stored as they are and never pass through here.
 */
export function decodeForeign(message: ForeignMemoryMessage): Decoded {
  try {
    if (isStructured(message.contentType)) return { ok: true, message: decodeStructured(message.body) };
    const attributes: Record<string, string> = {};
    for (const [name, value] of Object.entries(message.headers ?? {})) {
      if (name.startsWith(PREFIX)) attributes[name.slice(PREFIX.length)] = value;
    }
    if (message.contentType !== undefined) attributes.datacontenttype = message.contentType;
    if (attributes.specversion === undefined) {
      throw new UndecodableMessageError(
        'memory',
        'the message has no ce_specversion header and is not a structured CloudEvent',
      );
    }
    return { ok: true, message: { attributes, body: message.body } };
  } catch (error) {
    return { ok: false, error: error as Error };
  }
}
