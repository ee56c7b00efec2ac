import type { Socket } from 'socket.io';
import type { Inbox, InboxEntry } from '../inbox/inbox.js';
import type { Envelope } from '../notification/schema.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { ReceiptRecorder } from '../receipts/recorder.js';
import { DeadlineList, type Timed } from '../util/deadline-list.js';
import { readAcksDirectly } from './fast-path/ack-reader.js';
import { nextAckId, socketIoAcks, supportsDirectWrite, writeEvent, writeSocketIoPacketsDirectly } from './fast-path/packet-writer.js';
import type { FastPathParts } from '../config/config.js';
import { TOKEN_EXPIRED_EVENT, type PushSocket, type TokenExpired } from './protocol.js';

export interface ConnectionOptions {
  /** A reliable emit not acked within this counts as not delivered. */
  ackTimeoutMs: number;
  /** A socket with a reliable emit un-acked for longer than this counts as behind. */
  ackHoldMs: number;
  /** Reliable emits a socket may have un-acked before it counts as behind; also the replay window. */
  maxPending: number;
  /** Packets waiting in engine.io's write buffer before the socket takes no more. */
  maxBuffered: number;
}

/** What every connection of a node shares. */
export interface ConnectionDeps {
  options: ConnectionOptions;
  /** The parts of the socket fast path this process may use (probe.ts). */
  fastPath: FastPathParts;
  inbox: Inbox;
  /** An inbox entry acked here is delivered: its receipt says so. */
  receipts: ReceiptRecorder;
  metrics: Metrics;
  logger: Logger;
  /** Messages refused to the session as `behind` are still on their way to its inbox. */
  spillsPending(sessionId: string): boolean;
}

/** After a failed inbox replay (Redis down), the next try comes this much later. */
const REPLAY_RETRY_MS = 1000;

/** A reliable emit waiting for its ack: one record, settled once by the ack, the timeout or the close. */
interface Emit extends Timed<Emit> {
  /** The ack id on the wire; -1 when socket.io's own `emit` chose it. */
  id: number;
  /** Its callback waits in socket.io's ack map too (sent before this socket's acks were read directly). */
  inSocketIoMap: boolean;
  /** The message's id: an inbox replay waits for this emit instead of sending the message again. */
  messageId: string;
  done: (acked: boolean) => void;
  /** Replays waiting for this emit's outcome. */
  watchers: Array<(acked: boolean) => void> | undefined;
}

/**
 * Everything about one socket: its session and groups, its un-acked reliable emits (one record each and
 * one timer for all), how it writes (the fast path or socket.io), the replay of its session's inbox and
 * its token's expiry. The gateway makes one per socket and drops it at the disconnect.
 */
export class Connection {
  sessionId: string | undefined = undefined;
  groups: string[] = [];
  private readonly unacked: DeadlineList<Emit>;
  /** Envelopes are written with the fast path's writer (else `socket.emit`). */
  private readonly direct: boolean;
  /** Acks are read off the WebSocket, into `unacked`, by the fast path's reader. */
  private readsAcks = false;
  /**
   * The session's inbox holds messages for this socket that must go out before anything newer: it was
   * refused one for being behind, or one was stored while it had emits out. New reliable messages go
   * to the inbox's tail meanwhile; the replay that starts once it has caught up clears this when it
   * finds the inbox empty.
   */
  private backlog = false;
  /** The session whose inbox is being replayed to it now (one replay at a time). */
  private replaying: string | undefined;
  /** A replay was asked for while one ran: it reads the inbox once more before it ends. */
  private replayAgain = false;
  private expiry: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(readonly socket: PushSocket, private readonly deps: ConnectionDeps) {
    this.unacked = new DeadlineList(deps.options.ackTimeoutMs, (emit) => this.settle(emit, false));
    // engine.io keeps the upgrade request (and all it references) for the connection's lifetime; the
    // handshake has everything needed from it by now.
    (socket.conn as unknown as { request: unknown }).request = null;
    const plain = socket as unknown as Socket;
    const { fastPath } = deps;
    this.direct = fastPath.eventWriter && supportsDirectWrite(plain);
    if (this.direct && fastPath.groupWriter) writeSocketIoPacketsDirectly(plain);
    if (this.direct && fastPath.ackReader && !this.readAcks()) {
      // A client that starts on long-polling gets the reader once it has upgraded to a websocket.
      socket.conn.once('upgrade', () => this.readAcks());
    }
  }

  /** Reliable emits waiting for their ack. */
  get pending(): number {
    return this.unacked.size;
  }

  /**
   * Whether the socket takes a message now: not when engine.io's write buffer is full or, for a
   * reliable one, when too many are un-acked or the oldest has waited past the hold time (a socket that
   * is not keeping up, or not acking at all). A reliable message it is refused goes to its inbox, which
   * is offered to it again once it has caught up.
   */
  canTake(reliable: boolean): boolean {
    if (!this.socket.connected) return false;
    if (reliable && this.backlog) {
      // Nothing out and no replay to end the backlog (a replay that failed or was cut short): start one.
      if (this.replaying === undefined && this.unacked.size === 0) this.replay();
      return false;
    }
    const takes = this.keepsUp(reliable);
    if (!takes && reliable) this.backlog = true;
    return takes;
  }

  /** Emits without an ack (volatile, or a group member's copy). */
  send(envelope: Envelope): void {
    if (this.direct) writeEvent(this.socket as unknown as Socket, envelope.event, envelope);
    else this.socket.emit(envelope.event, envelope);
  }

  /** Emits asking for an ack: `done(true)` at the client's ack, `done(false)` at the timeout or the close; once. */
  sendWithAck(envelope: Envelope, done: (acked: boolean) => void): void {
    if (this.closed) {
      done(false);
      return;
    }
    const emit: Emit = {
      id: -1, inSocketIoMap: false, messageId: envelope.id, done, watchers: undefined, at: 0, prev: undefined, next: undefined,
    };
    this.unacked.add(emit);
    const plain = this.socket as unknown as Socket;
    if (this.direct) {
      emit.id = nextAckId(plain);
      if (!this.readsAcks) {
        // Until the reader runs (long-polling), socket.io receives the ack and calls this from its map.
        emit.inSocketIoMap = true;
        socketIoAcks(plain).set(emit.id, () => this.settle(emit, true));
      }
      writeEvent(plain, envelope.event, envelope, emit.id);
    } else {
      // socket.io's own timer only cleans its ack map; the outcome is this connection's timer's.
      const withAck = plain.timeout(this.deps.options.ackTimeoutMs) as unknown as {
        emit(event: string, envelope: Envelope, ack: (err: Error | null) => void): void;
      };
      withAck.emit(envelope.event, envelope, (err) => {
        if (!err) this.settle(emit, true);
      });
    }
  }

  /**
   * Offers the session's inbox to this socket, oldest first, a window of `maxPending` at a time, removing
   * each entry once acked. Stops at the first entry that is not acked (it stays for the next
   * registration) or when the socket leaves the session; reads again until the inbox is empty, so that
   * what is stored meanwhile follows. Asked while a replay runs, that replay reads once more instead.
   */
  replay(): void {
    const sessionId = this.sessionId;
    if (sessionId === undefined || this.closed) return;
    // Until the inbox is found empty, newer messages queue behind what it holds.
    this.backlog = true;
    if (this.replaying === sessionId) {
      this.replayAgain = true;
      return;
    }
    void this.replayInbox(sessionId);
  }

  /**
   * A message for the session was put in its inbox (by this node or another): replay it now if this
   * socket has nothing out, else once it has caught up (it is in backlog until then).
   */
  inboxChanged(): void {
    if (this.sessionId === undefined || this.closed) return;
    if (this.replaying === this.sessionId) this.replayAgain = true;
    else if (this.unacked.size === 0) this.replay();
    else this.backlog = true;
  }

  /** Disconnects the socket with `token_expired` once its token's expiry time (ms since epoch) has come. */
  expireAt(expiresAt: number): void {
    const left = expiresAt - Date.now();
    if (left > 0) {
      // setTimeout holds at most ~24.8 days; a later expiry is looked at again then.
      this.expiry = setTimeout(() => this.expireAt(expiresAt), Math.min(left, 2 ** 31 - 1));
      return;
    }
    const info: TokenExpired = { code: 'token_expired', message: 'your token expired; connect again with a new one' };
    (this.socket as unknown as Socket).emit(TOKEN_EXPIRED_EVENT, info);
    this.deps.metrics.socketRefusals.inc({ reason: 'token_expired' });
    this.socket.disconnect(true);
  }

  /** The socket disconnected: every emit still waiting is not delivered; timers stop. */
  close(): void {
    this.closed = true;
    clearTimeout(this.expiry);
    for (const emit of this.unacked.drain()) this.finish(emit, false);
  }

  private readAcks(): boolean {
    this.readsAcks = readAcksDirectly(this.socket as unknown as Socket, this.takeAck);
    return this.readsAcks;
  }

  /** The reader found an ack: true when it was for one of this connection's emits. */
  private readonly takeAck = (id: number): boolean => {
    // Clients ack in the order they received: the emit looked for is nearly always the oldest.
    for (let emit = this.unacked.head; emit; emit = emit.next) {
      if (emit.id !== id) continue;
      this.settle(emit, true);
      return true;
    }
    return false;
  };

  private keepsUp(reliable: boolean): boolean {
    const conn = this.socket.conn as unknown as { writeBuffer: unknown[] };
    const { maxBuffered, maxPending, ackHoldMs } = this.deps.options;
    if (conn.writeBuffer.length >= maxBuffered) return false;
    if (!reliable) return true;
    const oldest = this.unacked.head;
    if (oldest === undefined) return true;
    if (this.unacked.size >= maxPending) return false;
    return Date.now() - oldest.at < ackHoldMs;
  }

  /** Takes the emit out of the waiting ones (if it still is) and reports its outcome. */
  private settle(emit: Emit, acked: boolean): void {
    // Expired emits were taken out by the list already; acked ones are taken out here.
    if (acked && !this.unacked.remove(emit)) return;
    this.finish(emit, acked);
  }

  private finish(emit: Emit, acked: boolean): void {
    if (emit.inSocketIoMap) socketIoAcks(this.socket as unknown as Socket).delete(emit.id);
    emit.done(acked);
    if (emit.watchers) for (const watcher of emit.watchers) watcher(acked);
    // Caught up (everything acked, none left waiting): what went to its inbox meanwhile follows now. A
    // socket that does not ack at all never gets here, so it is not offered its inbox again and again.
    if (acked && this.backlog && this.unacked.size === 0 && this.replaying === undefined) this.replay();
  }

  private async replayInbox(sessionId: string): Promise<void> {
    const { inbox, metrics, logger, options } = this.deps;
    const current = () => !this.closed && this.socket.connected && this.sessionId === sessionId;
    this.replaying = sessionId;
    try {
      while (current()) {
        this.replayAgain = false;
        const entries = await inbox.read(sessionId, options.maxPending);
        if (!current()) return;
        if (entries.length === 0) {
          if (this.replayAgain) continue;
          // Done, unless a message refused as `behind` is still on its way in (`inboxChanged` follows).
          if (!this.deps.spillsPending(sessionId)) this.backlog = false;
          return;
        }
        const acks = await Promise.all(entries.map((entry) => this.offer(entry)));
        const acked = entries.filter((_, i) => acks[i]);
        // An entry acked as a late direct emit may have been removed by the dispatcher already.
        const replayed = await inbox.removeAll(sessionId, acked.map((entry) => entry.id));
        if (replayed > 0) metrics.inbox.inc({ op: 'replayed' }, replayed);
        for (const entry of acked) this.deps.receipts.outcome(entry.id, 'delivered', { target: 'session', session: sessionId });
        if (acked.length < entries.length) return;
      }
    } catch (err) {
      logger.warn({ err, session: sessionId }, `inbox replay failed; the messages stay in the inbox, tried again in ${REPLAY_RETRY_MS} ms`);
      // The socket is in backlog: without another try its session would wait for the next message.
      setTimeout(() => {
        if (this.sessionId === sessionId) this.replay();
      }, REPLAY_RETRY_MS).unref();
    } finally {
      if (this.replaying === sessionId) this.replaying = undefined;
    }
  }

  /**
   * Sends an inbox entry, or, when this socket still has it out (stored at the hold time while its
   * ack was awaited), waits for that emit instead of sending a duplicate.
   */
  private offer(entry: InboxEntry): Promise<boolean> {
    for (let emit = this.unacked.head; emit; emit = emit.next) {
      if (emit.messageId !== entry.id) continue;
      const out = emit;
      return new Promise((resolve) => (out.watchers ??= []).push(resolve));
    }
    const { expiresAt: _expiresAt, ...envelope } = entry;
    return new Promise((resolve) => this.sendWithAck(envelope, resolve));
  }
}
