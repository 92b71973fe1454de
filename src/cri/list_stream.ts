// What the Stream* list calls (StreamPodSandboxes, StreamContainers, StreamImages and the
// stats and metrics streams) share: a list's encoded items sent as several replies, each
// bounded in bytes and in items, at the pace the client reads, until it cancels.
import { Encoded, EncodedItems, repeatedField } from './proto';
import type { StreamContext } from './server';

export interface ChunkBounds {
  /** Encoded bytes of one reply; an item bigger than this alone is sent alone. */
  maxBytes: number;
  /** Items in one reply. */
  maxItems: number;
}

/**
 * 1 MiB keeps each reply a quarter of grpc's default 4 MiB receive limit (kubelet's is
 * 16 MiB), however big the items are; 1000 items keeps replies of small items (a few
 * hundred bytes each) from growing into one big message that a slow client holds up.
 */
export const STREAM_CHUNK_BOUNDS: ChunkBounds = { maxBytes: 1 << 20, maxItems: 1000 };

const varintSize = (n: number): number => (n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x200000 ? 3 : n < 0x10000000 ? 4 : 5);

/**
 * The items as replies whose field `field` repeats them, in order, each within `bounds`.
 * No reply at all when there are no items: the CRI asks for lists of at least one item,
 * as containerd and CRI-O send them (kubelet reads until EOF either way).
 */
export function* chunks(field: number, items: readonly Buffer[], bounds: ChunkBounds): Generator<Encoded> {
  const tag = varintSize((field << 3) | 2);
  let start = 0;
  let size = 0;
  for (let i = 0; i < items.length; i++) {
    const n = tag + varintSize(items[i].length) + items[i].length;
    if (i > start && (size + n > bounds.maxBytes || i - start >= bounds.maxItems)) {
      yield repeatedField(field, items.slice(start, i));
      start = i;
      size = 0;
    }
    size += n;
  }
  if (items.length > start) yield repeatedField(field, items.slice(start));
}

/** The field that repeats the items in every CRI List and Stream reply. */
const ITEMS_FIELD = 1;

/** Send the items as chunks (see chunks), waiting whenever the client is behind; a
 * client that cancels ends it quietly, with nothing more written. The chunks go out
 * encoded: the response codec passes an Encoded message through as it is. */
export async function sendChunked(ctx: StreamContext<unknown>, items: readonly Buffer[], bounds: ChunkBounds): Promise<void> {
  const cancelled = new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve(), { once: true }));
  for (const chunk of chunks(ITEMS_FIELD, items, bounds)) {
    if (ctx.signal.aborted) return;
    if (!ctx.write(chunk)) await Promise.race([ctx.drained(), cancelled]);
  }
}

/** Filters whose replies are kept at once; kubelet asks for a few (none, by state, by a
 * pod's labels), so more is a client's churn and starts the cache afresh. */
const KEPT_REPLIES = 32;

/**
 * Whole encoded List replies, by filter, kept while `generation` stays the same: kubelet's
 * PLEG lists every pod and container each second on a node where little changes, and a
 * reply kept costs nothing to answer again (the response codec passes it as it is).
 */
export class ReplyCache<F> {
  private readonly replies = new Map<string, Encoded>();
  private at: unknown = undefined;
  /** Filters' keys by the filter: a request kept by its bytes (keptDecoder) comes again as the same object. */
  private readonly keys = new WeakMap<object, string>();

  private key(f: F): string {
    if (f === null || f === undefined) return '';
    if (typeof f !== 'object' || !Object.isFrozen(f)) return JSON.stringify(f);
    let key = this.keys.get(f);
    if (key === undefined) this.keys.set(f, (key = JSON.stringify(f)));
    return key;
  }

  /** The reply for `f` made while `generation` held, or `make`'s, now kept. */
  get(generation: unknown, f: F, make: () => Encoded): Encoded {
    if (generation !== this.at) {
      this.replies.clear();
      this.at = generation;
    }
    const key = this.key(f);
    let reply = this.replies.get(key);
    if (!reply) {
      reply = make();
      if (this.replies.size >= KEPT_REPLIES) this.replies.clear();
      this.replies.set(key, reply);
    }
    return reply;
  }
}

/**
 * A List call and its Stream call over records whose encodings are kept between calls
 * (EncodedItems): the same selection, answered whole or in chunks; whole List replies are
 * kept while nothing changed (ReplyCache).
 */
export class CachedListing<R extends { id: string }, F> {
  private readonly encoded: EncodedItems<R>;
  private readonly replies = new ReplyCache<F>();

  constructor(
    private readonly o: {
      /** The records a filter selects, in the order they are answered in. */
      select: (f: F) => R[];
      /** Changes whenever a record's encoding would. */
      version: (r: R) => string;
      encode: (r: R) => Buffer;
      /** Whether a record still exists (the cache forgets the others). */
      live: (id: string) => boolean;
      /** Changes whenever any record does (added, changed, removed). */
      generation: () => number;
    },
    private readonly bounds: ChunkBounds,
  ) {
    this.encoded = new EncodedItems(o.encode);
  }

  private items(f: F) {
    return this.o.select(f).map((r) => ({ id: r.id, version: this.o.version(r), item: r }));
  }

  /** The List reply, encoded. */
  reply(f: F): Encoded {
    return this.replies.get(this.o.generation(), f, () => this.encoded.reply(ITEMS_FIELD, this.items(f), this.o.live));
  }

  /** The Stream call's replies. */
  send(f: F, ctx: StreamContext<unknown>): Promise<void> {
    return sendChunked(ctx, this.encoded.bytes(this.items(f), this.o.live), this.bounds);
  }
}
