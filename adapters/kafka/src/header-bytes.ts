/**
 * Header names and values between strings and bytes, for @platformatic/kafka (which takes and gives
 * headers as Buffers). Every record carries the same half-dozen names, and some values repeat from
 * record to record (the type, the source, the content type): turning them into bytes, or back into
 * strings, once per record was ~7% of the bus's CPU on that client (`wharf bench`). The library only
 * reads the Buffers it is given, so one Buffer can serve every record that carries the same text.
 */

/** Names remembered at most: a producer writing ever new header names must not grow the cache. */
const MAX_NAMES = 256;

const nameBytes = new Map<string, Buffer>();

/** The bytes of a header name, shared between records. */
export function headerNameBytes(name: string): Buffer {
  let bytes = nameBytes.get(name);
  if (bytes === undefined) {
    bytes = Buffer.from(name);
    if (nameBytes.size < MAX_NAMES) nameBytes.set(name, bytes);
  }
  return bytes;
}

/** The last text a header had and its bytes: a repeated value is encoded once. */
export class LastBytes {
  #text: string | undefined;
  #bytes: Buffer = Buffer.alloc(0);

  bytes(text: string): Buffer {
    if (text === this.#text) return this.#bytes;
    const bytes = Buffer.from(text);
    // Long values rarely repeat, and holding one would keep its bytes alive for nothing.
    if (text.length <= 128) {
      this.#text = text;
      this.#bytes = bytes;
    }
    return bytes;
  }
}

/**
 * Names read back from bytes: the known ones are matched by their bytes (a few comparisons) rather
 * than decoded into a new string per record. `known` lists the names Wharf writes.
 */
export class HeaderNames {
  readonly #byLength = new Map<number, { readonly bytes: Buffer; readonly text: string }[]>();

  constructor(known: Iterable<string>) {
    for (const text of known) {
      const bytes = Buffer.from(text);
      const list = this.#byLength.get(bytes.length) ?? [];
      list.push({ bytes, text });
      this.#byLength.set(bytes.length, list);
    }
  }

  text(raw: Buffer): string {
    const candidates = this.#byLength.get(raw.length);
    if (candidates !== undefined) {
      for (const { bytes, text } of candidates) {
        let i = 0;
        while (i < bytes.length && raw[i] === bytes[i]) i++;
        if (i === bytes.length) return text;
      }
    }
    return raw.toString();
  }
}
