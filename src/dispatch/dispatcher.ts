import type { ForwardOutcome, NodeBus } from '../cluster/bus.js';
import type { SessionDirectory } from '../cluster/directory.js';
import type { AckLog } from '../inbox/ack-log.js';
import type { Inbox } from '../inbox/inbox.js';
import type { Delivery } from '../ingest/queue.js';
import type { NotificationParser } from '../notification/parse.js';
import { toEnvelope, type Envelope, type Notification } from '../notification/schema.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { IdClaims } from '../receipts/receipts.js';
import { sessionDetail, type ReceiptRecorder } from '../receipts/recorder.js';
import { DeadlineList, type Timed } from '../util/deadline-list.js';
import type { LocalOutcome, LocalSessions } from './local-sessions.js';
import { StoreOrder, type InOrder } from './store-order.js';

export interface DispatcherDeps {
  /** How long a reliable message may hold its broker slot waiting for a client ack (see config). */
  ackHoldMs: number;
  parser: NotificationParser;
  /** This node's sockets. */
  sessions: LocalSessions;
  /** Which other nodes hold a session's sockets. */
  directory: SessionDirectory;
  /** How messages reach other nodes (also: whether groups can reach them now). */
  bus: NodeBus;
  inbox: Inbox;
  /**
   * Which reliable messages sessions acked lately: a redelivered one they acked is not emitted again.
   * Undefined: suppression is off (`DUPLICATE_WINDOW_MS=0`).
   */
  acked: AckLog | undefined;
  /**
   * Which notification ids were accepted lately: a message whose id was (a publisher sent it twice) is
   * acked, not delivered again. Undefined: off (`IDEMPOTENCY_TTL_MS=0`).
   */
  claims: IdClaims | undefined;
  /** Where outcomes are reported (receipts, their stream). */
  receipts: ReceiptRecorder;
  metrics: Metrics;
  logger: Logger;
}

/**
 * One broker delivery on its way to its targets: settled once, when every part (each session, the
 * groups and broadcast together) has its outcome, or at once when something throws.
 */
class Routing {
  private waiting = 0;
  private allFinal = true;
  private ended = false;
  /** Something threw: outcomes that come in later change nothing. */
  failed = false;

  constructor(
    readonly delivery: Delivery,
    private readonly end: (routing: Routing, final: boolean, err?: unknown) => void,
  ) {}

  expect(parts: number): void {
    this.waiting += parts;
  }

  /** A part has its outcome; `final` false sends the message back to the queue once all are in. */
  done(final: boolean): void {
    if (this.ended) return;
    if (!final) this.allFinal = false;
    this.waiting -= 1;
    if (this.waiting > 0) return;
    this.ended = true;
    this.end(this, this.allFinal);
  }

  /** Something threw: the message goes back to the queue; later outcomes change nothing. */
  fail(err: unknown): void {
    if (this.ended) return;
    this.ended = true;
    this.failed = true;
    this.end(this, false, err);
  }
}

/**
 * A reliable message for one session: offered to this node's sockets and forwarded to every other node
 * holding the session, done at the first `delivered`, missed when every part answered without one or
 * the hold time passed first. Waits in the dispatcher's hold list until decided.
 */
class ReliableAttempt implements Timed<ReliableAttempt>, InOrder<ReliableAttempt> {
  at = 0;
  prev: ReliableAttempt | undefined = undefined;
  next: ReliableAttempt | undefined = undefined;
  orderPrev: ReliableAttempt | undefined = undefined;
  orderNext: ReliableAttempt | undefined = undefined;
  inOrder = false;
  whenFirst: (() => void) | undefined = undefined;
  /** Parts still to answer: the local offer, the directory lookup while it runs, each forward. */
  waiting = 1;
  /** Where it stands: still out, delivered, or missed (being stored, or stored after the hold time). */
  state: 'out' | 'delivered' | 'missed' = 'out';
  /** Missed at the hold time: a part may still deliver it, which then takes it out of the inbox. */
  held = false;
  /** Stored in the inbox (a late delivery's removal waits for this). */
  stored = false;
  lateDelivery = false;
  noLocalSockets = false;
  /** The local offer answered `behind`: `LocalSessions.spilled` is owed once the outcome is known. */
  spillOwed = false;
  remotes: readonly string[] = [];

  constructor(
    readonly sessionId: string,
    readonly notification: Notification,
    readonly envelope: Envelope,
    readonly routing: Routing,
  ) {}
}

/**
 * Takes each queue delivery to its final outcome (PROTOCOL §4) and only then settles it:
 * - invalid: dead-lettered with the reason, counted, never retried;
 * - expired: counted and acked;
 * - reliable session message: acked after a client ack (here or on the owning node) or an inbox write;
 *   requeued if neither could be done (the inbox was unavailable);
 * - volatile session message, group, broadcast: acked once handed to the sockets or the bus.
 * Every message takes the same path, whether its session is held here, elsewhere or nowhere; a message
 * another node forwards here is offered to this node's sockets the way a local one is.
 */
export class Dispatcher {
  private active = 0;
  private idleWaiters: Array<() => void> = [];
  /** Reliable attempts not decided yet, oldest first: at the hold time each is missed. */
  private readonly holds: DeadlineList<ReliableAttempt>;
  /** The same, per session: an inbox write waits for the older attempts of its session. */
  private readonly order = new StoreOrder<ReliableAttempt>();

  constructor(private readonly deps: DispatcherDeps) {
    this.holds = new DeadlineList(deps.ackHoldMs, (attempt) => this.holdTimePassed(attempt));
    deps.bus.onForward((sessionId, notification) => new Promise<ForwardOutcome>((resolve) => {
      const envelope = toEnvelope(notification);
      const answer = (local: LocalOutcome): void => {
        // The node that sent it stores it; it then asks this node to replay (see `replayAfterStore`).
        if (local === 'behind') deps.sessions.spilled(sessionId);
        resolve(local === 'delivered' ? 'delivered' : 'not_delivered');
      };
      if (!notification.reliable) {
        const sent = deps.sessions.send(sessionId, envelope);
        // The node that forwarded it reports nothing for its forwards: the outcome is this node's.
        if (sent !== 'no_sockets') {
          deps.receipts.outcome(notification.id, sent === 'delivered' ? 'delivered' : 'dropped',
            sessionDetail(notification, sessionId, sent === 'delivered' ? {} : { reason: sent }));
        }
        answer(sent);
      }
      // Recorded here, where the client acked: the node that sent it may die before it acks the broker.
      else deps.sessions.offer(sessionId, envelope, (local) => this.recordedIfDelivered(sessionId, notification.id, local, answer));
    }));
    deps.bus.onReplay((sessionId) => deps.sessions.replay(sessionId));
  }

  /** Deliveries being handled now. */
  get inflight(): number {
    return this.active;
  }

  /** Resolves when no delivery is being handled (or at once if none is). */
  idle(): Promise<void> {
    if (this.active === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  handle = (delivery: Delivery): void => {
    this.active += 1;
    const routing = new Routing(delivery, this.settle);
    try {
      const notification = this.parse(delivery);
      if (notification !== undefined) this.admit(notification, routing);
    } catch (err) {
      routing.fail(err);
    }
  };

  /**
   * A valid notification: unless its id was accepted already within the window (a second publish of
   * it; a redelivery of the same broker message is not one), it is routed, and its receipt starts here
   * when it did not come through the HTTP API (which wrote that already).
   */
  private admit(n: Notification, routing: Routing): void {
    const { claims } = this.deps;
    const { delivery } = routing;
    if (!claims || delivery.redelivered || n.idAssigned) {
      this.accept(n, routing);
      return;
    }
    claims.claim(n.id).then(
      (first) => {
        if (first) {
          this.accept(n, routing);
          return;
        }
        this.deps.metrics.duplicatePublishes.inc();
        this.deps.logger.debug({ id: n.id }, 'a message with this id was accepted already; acked, not delivered again');
        routing.expect(1);
        routing.done(true);
      },
      (err: unknown) => {
        this.deps.logger.debug({ err, id: n.id }, 'id claims unavailable; the message is delivered even if it is a second publish');
        this.accept(n, routing);
      },
    );
  }

  private accept(n: Notification, routing: Routing): void {
    if (routing.delivery.message.source !== 'http' && !routing.delivery.redelivered) this.deps.receipts.accepted(n);
    this.route(n, routing);
  }

  /** The notification, or undefined after starting to dead-letter an invalid one. */
  private parse(delivery: Delivery): Notification | undefined {
    const { parser, metrics, logger } = this.deps;
    const { message } = delivery;
    if (message.source !== 'http') metrics.received('amqp');
    const parsed = parser.parseBytes(message.body, {
      messageId: message.messageId,
      timestamp: message.timestamp,
      receivedAt: Date.now(),
    });
    if (parsed.ok) {
      // What follows needs the notification only: the queue may let go of the message meanwhile.
      delivery.release();
      return parsed.notification;
    }
    metrics.messagesInvalid.inc({ reason: parsed.error.reason });
    metrics.deadLetters.inc({ reason: parsed.error.reason });
    logger.warn({ messageId: message.messageId, reason: parsed.error.reason, detail: parsed.error.message },
      'invalid notification dead-lettered');
    delivery.deadLetter(parsed.error.reason, parsed.error.message).then(
      () => {
        if (message.messageId !== undefined) {
          this.deps.receipts.outcome(message.messageId, 'dead', { target: 'unknown', reason: parsed.error.reason });
        }
        this.finished();
      },
      (err: unknown) => this.failed(delivery, err),
    );
    return undefined;
  }

  private readonly settle = (routing: Routing, final: boolean, err?: unknown): void => {
    if (err !== undefined) {
      this.failed(routing.delivery, err);
      return;
    }
    if (final) routing.delivery.ack();
    else routing.delivery.requeue();
    this.finished();
  };

  /** Something threw: the message goes back to the queue, and it is no longer being handled. */
  private failed(delivery: Delivery, err: unknown): void {
    this.deps.logger.error({ err }, 'dispatch failed; the message goes back to the queue');
    delivery.requeue();
    this.finished();
  }

  private finished(): void {
    this.active -= 1;
    if (this.active === 0) for (const resolve of this.idleWaiters.splice(0)) resolve();
  }

  /** Starts every part of a valid notification: one per session, one for its groups and broadcast. */
  private route(n: Notification, routing: Routing): void {
    if (n.expiresAt <= Date.now()) {
      this.countAll(n, 'expired');
      this.droppedEverywhere(n, 'expired');
      routing.expect(1);
      routing.done(true);
      return;
    }
    routing.expect(n.sessions.length + 1);
    if (n.sessions.length > 0) {
      const envelope = toEnvelope(n);
      for (const sessionId of n.sessions) {
        if (n.reliable) this.reliableToSession(sessionId, n, envelope, routing);
        else this.volatileToSession(sessionId, n, envelope, routing);
      }
    }
    routing.done(this.toGroups(n));
  }

  /** Emits to the groups and the broadcast; true when that outcome is final. */
  private toGroups(n: Notification): boolean {
    if (n.groups.length === 0 && !n.broadcast) return true;
    const { sessions, metrics } = this.deps;
    if (!this.deps.bus.connected) {
      // Other nodes' members cannot be reached now: a reliable message goes back to the queue (for
      // later, or for a node that can reach them); a volatile one is dropped.
      this.countGroups(n, n.reliable ? 'failed' : 'dropped');
      if (!n.reliable) this.receiptFanOut(n, 'dropped', { reason: 'cluster_unavailable' });
      return !n.reliable;
    }
    // Sockets reached on this node; the other nodes report theirs (`Gateway`, fan-out counts).
    let sockets = 0;
    for (const group of n.groups) {
      sockets += sessions.emitToGroup(group, toEnvelope(n, group));
      metrics.delivery('group', n.reliable, 'delivered');
      metrics.latency(n.reliable, n.enqueuedAt);
    }
    if (n.broadcast) {
      sockets += sessions.broadcast({ ...toEnvelope(n), broadcast: true });
      metrics.delivery('broadcast', n.reliable, 'delivered');
      metrics.latency(n.reliable, n.enqueuedAt);
    }
    this.receiptFanOut(n, 'delivered', { sockets });
    return true;
  }

  private volatileToSession(sessionId: string, n: Notification, envelope: Envelope, routing: Routing): void {
    const delivered = this.deps.sessions.send(sessionId, envelope) === 'delivered';
    const known = this.deps.directory.knownRemoteNodes(sessionId);
    if (known) {
      this.volatileForwarded(sessionId, n, delivered, known, routing);
      return;
    }
    this.remoteNodes(sessionId).then(
      (remotes) => this.volatileForwarded(sessionId, n, delivered, remotes, routing),
      (err: unknown) => routing.fail(err),
    );
  }

  private volatileForwarded(sessionId: string, n: Notification, delivered: boolean, remotes: readonly string[], routing: Routing): void {
    const { bus, metrics, logger, receipts } = this.deps;
    for (const node of remotes) {
      bus.forward(node, sessionId, n).catch((err: unknown) => {
        logger.debug({ err, node, session: sessionId }, 'volatile forward failed');
      });
    }
    const outcome = delivered ? 'delivered' : remotes.length > 0 ? 'forwarded' : 'dropped';
    metrics.delivery('session', false, outcome);
    // A node the message was forwarded to reports its own sockets' outcome.
    if (outcome !== 'forwarded') {
      const reason = this.deps.sessions.sockets(sessionId) > 0 ? 'behind' : 'no_sockets';
      receipts.outcome(n.id, outcome, sessionDetail(n, sessionId, outcome === 'dropped' ? { reason } : {}));
    }
    if (delivered) metrics.latency(false, n.enqueuedAt);
    routing.done(true);
  }

  private reliableToSession(sessionId: string, n: Notification, envelope: Envelope, routing: Routing): void {
    const { acked } = this.deps;
    if (!routing.delivery.redelivered || !acked) {
      this.attemptReliable(sessionId, n, envelope, routing);
      return;
    }
    // A node may have died after the session acked it and before the broker heard: ask first.
    acked.has(sessionId, n.id).then(
      (acked) => {
        if (!acked) {
          this.attemptReliable(sessionId, n, envelope, routing);
          return;
        }
        this.deps.metrics.duplicatesSuppressed.inc();
        this.deps.logger.debug({ session: sessionId, id: n.id }, 'redelivered message already acked by its session; not emitted again');
        routing.done(true);
      },
      (err: unknown) => {
        this.deps.logger.debug({ err, session: sessionId, id: n.id }, 'acked-id log unavailable; a redelivered message may be a duplicate');
        this.attemptReliable(sessionId, n, envelope, routing);
      },
    );
  }

  /**
   * Notes a client's ack in the acked-id log, and reports the outcome at once. Not waiting for the write
   * costs no protection: until the broker has the ack, the write is as likely to be in flight either way,
   * and waiting would hold every reliable message's broker slot for a Redis round trip more.
   */
  private recordedIfDelivered(sessionId: string, id: string, local: LocalOutcome, then: (local: LocalOutcome) => void): void {
    const { acked } = this.deps;
    if (local === 'delivered' && acked) {
      acked.record(sessionId, id).catch((err: unknown) => {
        this.deps.logger.debug({ err, session: sessionId, id }, 'could not record an ack; a redelivery of it would be emitted again');
      });
    }
    then(local);
  }

  private attemptReliable(sessionId: string, n: Notification, envelope: Envelope, routing: Routing): void {
    const attempt = new ReliableAttempt(sessionId, n, envelope, routing);
    this.order.join(attempt);
    const known = this.deps.directory.knownRemoteNodes(sessionId);
    // The local offer, and either each known remote node or the directory lookup.
    attempt.waiting = 1 + (known ? known.length : 1);
    this.holds.add(attempt);
    this.deps.sessions.offer(sessionId, envelope, (offered) => this.recordedIfDelivered(sessionId, n.id, offered, (local) => {
      if (local === 'no_sockets') attempt.noLocalSockets = true;
      if (local === 'behind') attempt.spillOwed = true;
      this.answered(attempt, local === 'delivered', undefined);
    }));
    if (known) {
      this.forwardTo(attempt, known);
      return;
    }
    this.remoteNodes(sessionId).then(
      (remotes) => {
        attempt.waiting += remotes.length;
        this.forwardTo(attempt, remotes);
        this.answered(attempt, false, undefined); // the lookup itself
      },
      (err: unknown) => routing.fail(err),
    );
  }

  private forwardTo(attempt: ReliableAttempt, remotes: readonly string[]): void {
    attempt.remotes = remotes;
    for (const node of remotes) {
      this.deps.bus.forward(node, attempt.sessionId, attempt.notification).then(
        (outcome) => this.answered(attempt, outcome === 'delivered', node),
        (err: unknown) => {
          this.deps.logger.warn({ err, node, session: attempt.sessionId }, 'forward failed');
          this.answered(attempt, false, node);
        },
      );
    }
  }

  /** One part of a reliable attempt answered: this node's sockets (`node` undefined) or another node's. */
  private answered(attempt: ReliableAttempt, delivered: boolean, node: string | undefined): void {
    attempt.waiting -= 1;
    if (attempt.routing.failed) return;
    const { metrics, receipts } = this.deps;
    const { notification: n, sessionId } = attempt;
    if (delivered && attempt.state === 'out') {
      attempt.state = 'delivered';
      this.holds.remove(attempt);
      this.order.leave(attempt);
      this.payOwedSpill(attempt);
      metrics.delivery('session', true, 'delivered');
      metrics.latency(true, attempt.notification.enqueuedAt);
      receipts.outcome(n.id, 'delivered', sessionDetail(n, sessionId, node === undefined ? {} : { node }));
      attempt.routing.done(true);
    } else if (delivered && attempt.held && !attempt.lateDelivery) {
      // Stored at the hold time, acked since: it no longer waits in the inbox.
      attempt.lateDelivery = true;
      receipts.outcome(n.id, 'delivered', sessionDetail(n, sessionId, node === undefined ? {} : { node }));
      if (attempt.stored) void this.removeDelivered(attempt);
    } else if (!delivered && attempt.state === 'out' && attempt.waiting === 0) {
      this.miss(attempt);
    }
  }

  private holdTimePassed(attempt: ReliableAttempt): void {
    if (attempt.routing.failed) {
      this.payOwedSpill(attempt);
      this.order.leave(attempt);
    }
    if (attempt.state !== 'out' || attempt.routing.failed) return;
    attempt.held = true;
    this.miss(attempt);
  }

  /**
   * No socket acked within the hold time (`held`: one may still ack later) or at all: the message
   * expires, or goes to the inbox.
   */
  private miss(attempt: ReliableAttempt): void {
    attempt.state = 'missed';
    this.holds.remove(attempt);
    this.store(attempt).then(
      (final) => {
        this.payOwedSpill(attempt);
        attempt.routing.done(final);
      },
      (err: unknown) => {
        this.payOwedSpill(attempt);
        attempt.routing.fail(err);
      },
    );
  }

  private payOwedSpill(attempt: ReliableAttempt): void {
    if (!attempt.spillOwed) return;
    attempt.spillOwed = false;
    this.deps.sessions.spilled(attempt.sessionId);
  }

  /** True when the message's outcome is final (stored or expired). */
  private async store(attempt: ReliableAttempt): Promise<boolean> {
    try {
      return await this.storeInTurn(attempt);
    } finally {
      this.order.leave(attempt);
    }
  }

  private async storeInTurn(attempt: ReliableAttempt): Promise<boolean> {
    const { inbox, metrics, logger } = this.deps;
    const { sessionId, notification: n, envelope } = attempt;
    if (n.expiresAt <= Date.now()) {
      metrics.delivery('session', true, 'expired');
      this.deps.receipts.outcome(n.id, 'dropped', sessionDetail(n, sessionId, { reason: 'expired' }));
      return true;
    }
    if (attempt.remotes.length > 0 && await this.ackedElsewhere(attempt)) {
      this.deps.receipts.outcome(n.id, 'delivered', sessionDetail(n, sessionId, { reason: 'acked_before_the_forward_timed_out' }));
      return true;
    }
    // A session with sockets is behind or not acking: its backlog may grow past the away bound.
    const connected = !attempt.noLocalSockets || attempt.remotes.length > 0;
    const turn = this.order.turn(attempt);
    if (turn) await turn;
    try {
      // Issued in order is written in order (one connection; one hash slot per session): the next
      // attempt of the session may issue its write as soon as this one's is on its way.
      const storing = inbox.store(sessionId, { ...envelope, expiresAt: n.expiresAt }, { connected });
      this.order.leave(attempt);
      await storing;
    } catch (err) {
      metrics.delivery('session', true, 'failed');
      logger.warn({ err, session: sessionId, id: n.id }, 'inbox write failed; the message goes back to the queue');
      return false;
    }
    metrics.delivery('session', true, 'stored');
    metrics.inbox.inc({ op: 'stored' });
    // A late ack (held) may have reported `delivered` already: the stored event then comes after it. Only
    // an offline session's message is streamed as stored; a connected one's backlog is streamed once
    // it is delivered (or given up), so a backend hears one outcome per message.
    const offline = attempt.noLocalSockets && attempt.remotes.length === 0;
    if (!attempt.lateDelivery) this.deps.receipts.outcome(n.id, 'stored', sessionDetail(n, sessionId), offline);
    if (attempt.held) {
      // The slot is free again; the emit is still out there: a late ack takes the message out of the inbox.
      metrics.backpressureEvents.inc({ reason: 'slow_ack' });
      attempt.stored = true;
      if (attempt.lateDelivery) void this.removeDelivered(attempt);
    }
    // `no_sockets` is known at once; an emit still waiting for its ack is not waited for here.
    await this.replayAfterStore(attempt);
    return true;
  }

  /**
   * A forward that failed or timed out may have been acked all the same (the owning node recorded it,
   * then died or its answer was lost): then it is not stored, or it would be replayed as a duplicate.
   */
  private async ackedElsewhere(attempt: ReliableAttempt): Promise<boolean> {
    const { sessionId, notification: n } = attempt;
    const { acked } = this.deps;
    if (!acked) return false;
    try {
      if (!(await acked.has(sessionId, n.id))) return false;
    } catch {
      return false;
    }
    this.deps.metrics.duplicatesSuppressed.inc();
    this.deps.metrics.delivery('session', true, 'delivered');
    return true;
  }

  private async removeDelivered(attempt: ReliableAttempt): Promise<void> {
    const { sessionId, notification: n } = attempt;
    try {
      if (await this.deps.inbox.remove(sessionId, n.id)) this.deps.metrics.inbox.inc({ op: 'replayed' });
      this.deps.metrics.latency(true, n.enqueuedAt);
    } catch (err) {
      this.deps.logger.debug({ err, session: sessionId, id: n.id }, 'could not remove a late-acked message; it may be delivered again');
    }
  }

  /**
   * The message waits in the inbox now: ask every other node holding the session to replay it. A node
   * that had been offered it found its sockets behind (they read the inbox once caught up, but may have
   * read it before this store) or not acking; one the session registered on since replayed before the
   * message was there. Here, a session that registered meanwhile replays now; sockets that were behind
   * replay through `spilled`.
   */
  private async replayAfterStore(attempt: ReliableAttempt): Promise<void> {
    const { sessions, bus, logger } = this.deps;
    const { sessionId } = attempt;
    if (attempt.noLocalSockets && sessions.sockets(sessionId) > 0) sessions.replay(sessionId);
    const remotesNow = await this.remoteNodes(sessionId, true);
    for (const node of remotesNow) {
      bus.requestReplay(node, sessionId).catch((err: unknown) => {
        logger.debug({ err, node, session: sessionId }, 'replay request failed; the message waits for the next registration');
      });
    }
  }

  /** The directory being unavailable means only this node's sockets can be reached now. */
  private async remoteNodes(sessionId: string, fresh = false): Promise<string[]> {
    try {
      return await this.deps.directory.remoteNodes(sessionId, { fresh });
    } catch (err) {
      this.deps.logger.warn({ err, session: sessionId }, 'session directory unavailable');
      return [];
    }
  }

  /** A receipt for each part of the notification: its sessions, and its groups and broadcast. */
  private droppedEverywhere(n: Notification, reason: string): void {
    for (const sessionId of n.sessions) this.deps.receipts.outcome(n.id, 'dropped', sessionDetail(n, sessionId, { reason }));
    this.receiptFanOut(n, 'dropped', { reason });
  }

  private receiptFanOut(n: Notification, outcome: 'delivered' | 'dropped', detail: { sockets?: number; reason?: string }): void {
    if (n.groups.length === 0 && !n.broadcast) return;
    this.deps.receipts.outcome(n.id, outcome, { target: n.groups.length > 0 ? 'group' : 'broadcast', ...detail });
  }

  private countAll(n: Notification, outcome: 'expired'): void {
    if (n.sessions.length > 0) this.deps.metrics.delivery('session', n.reliable, outcome, n.sessions.length);
    this.countGroups(n, outcome);
  }

  private countGroups(n: Notification, outcome: 'expired' | 'failed' | 'dropped'): void {
    if (n.groups.length > 0) this.deps.metrics.delivery('group', n.reliable, outcome, n.groups.length);
    if (n.broadcast) this.deps.metrics.delivery('broadcast', n.reliable, outcome);
  }
}
