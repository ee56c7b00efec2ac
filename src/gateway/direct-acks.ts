import type { Socket } from 'socket.io';
import { LinkedList, type Linked } from '../util/linked-list.js';

/**
 * The ack callbacks of one socket's direct writes (packet-writer.ts) that its ack reader (ack-reader.ts)
 * answers, by ack id, oldest first.
 *
 * socket.io keeps ack callbacks in a Map per socket. Set at every reliable message and deleted at its
 * ack, that Map empties again and again, and V8 then builds it a new hash table, which the socket keeps
 * until its next message, seconds later on a busy node: every such table survived two scavenges and was
 * promoted, the largest single part of what a node at its maximum rate kept between messages (a third of
 * the objects still live after a full collection that had been allocated in a 6 s window, 2026-12-01).
 * Here an entry is an object that dies at its ack, young.
 *
 * Ids come from the namespace's counter, so a socket's entries are added in increasing id order, and
 * clients ack in the order they received: the entry looked for is nearly always the oldest, and a socket
 * holds at most the gateway's per-socket limit of them, so the walk is short.
 */
export class DirectAcks {
  private readonly waiting = new LinkedList<Waiting>();

  add(id: number, ack: () => void): void {
    this.waiting.push({ id, ack, prev: undefined, next: undefined });
  }

  /** The callback waiting for `id`, taken out; undefined when none waits for it (unknown, timed out, answered). */
  take(id: number): (() => void) | undefined {
    for (let entry = this.waiting.head; entry; entry = entry.next) {
      if (entry.id !== id) continue;
      this.waiting.remove(entry);
      return entry.ack;
    }
    return undefined;
  }

  get size(): number {
    return this.waiting.size;
  }
}

interface Waiting extends Linked<Waiting> {
  readonly id: number;
  readonly ack: () => void;
}

const bySocket = new WeakMap<Socket, DirectAcks>();

/** The socket's registry, made by its ack reader when installed; undefined while socket.io reads its acks. */
export function directAcksOf(socket: Socket): DirectAcks | undefined {
  return bySocket.get(socket);
}

/** Called by the ack reader once it reads the socket's acks; from then on direct writes register here. */
export function startDirectAcks(socket: Socket): DirectAcks {
  const acks = new DirectAcks();
  bySocket.set(socket, acks);
  return acks;
}
