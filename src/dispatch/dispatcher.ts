import type { Cluster, ForwardOutcome } from '../cluster/cluster.js';
import type { Gateway, LocalOutcome } from '../gateway/gateway.js';
import type { Inbox } from '../inbox/inbox.js';
import type { Delivery } from '../ingest/queue.js';
import type { NotificationParser } from '../notification/parse.js';
import { toEnvelope, type Envelope, type Notification } from '../notification/schema.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';

/**
 * Takes each queue delivery to its final outcome (SPEC §4) and only then settles it:
 * - invalid: dead-lettered with the reason, counted, never retried;
 * - expired: counted and acked;
 * - reliable session message: acked after a client ack (here or on the owning node) or an inbox write;
 *   requeued if neither could be done (the inbox was unavailable);
 * - volatile session message, group, broadcast: acked once handed to the sockets or the bus.
 */
export class Dispatcher {
  private active = 0;
  private idleWaiters: Array<() => void> = [];

  constructor(
    private readonly deps: {
      /** How long a reliable message may hold its broker slot waiting for a client ack (see config). */
      ackHoldMs: number;
      parser: NotificationParser;
      gateway: Gateway;
      cluster: Cluster;
      inbox: Inbox;
      metrics: Metrics;
      logger: Logger;
    },
  ) {
    deps.cluster.onForward(async (sessionId, notification) => {
      const outcome = await deps.gateway.deliverToSession(sessionId, toEnvelope(notification));
      return outcome === 'delivered' ? 'delivered' : 'not_delivered';
    });
    deps.cluster.onReplay((sessionId) => deps.gateway.replaySession(sessionId));
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
    let notification: Notification | undefined;
    try {
      notification = this.parse(delivery);
    } catch (err) {
      this.failed(delivery, err);
      return;
    }
    if (notification === undefined) return; // invalid: being dead-lettered
    // The common case (one session, held only here or known to be) runs on callbacks, without the
    // promise chain of the general path: it is most of the work of a busy node.
    if (this.fastPath(delivery, notification)) return;
    this.dispatch(notification).then(
      (final) => this.settle(delivery, final),
      (err: unknown) => this.failed(delivery, err),
    );
  };

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
    logger.warn({ messageId: message.messageId, reason: parsed.error.reason, detail: parsed.error.message },
      'invalid notification dead-lettered');
    delivery.deadLetter(parsed.error.reason, parsed.error.message).then(
      () => this.finished(),
      (err: unknown) => this.failed(delivery, err),
    );
    return undefined;
  }

  private settle(delivery: Delivery, final: boolean): void {
    if (final) delivery.ack();
    else delivery.requeue();
    this.finished();
  }

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

  /**
   * A message for exactly one session whose other nodes are known from the directory cache to hold none
   * of its sockets: delivered here with callbacks. Anything else, and every miss of a reliable message
   * (inbox, replay), takes the general path. False when it did not take the message.
   */
  private fastPath(delivery: Delivery, n: Notification): boolean {
    if (n.sessions.length !== 1 || n.groups.length > 0 || n.broadcast || n.expiresAt <= Date.now()) return false;
    const sessionId = n.sessions[0]!;
    const remotes = this.deps.cluster.knownRemoteNodes(sessionId);
    if (remotes === undefined || remotes.length > 0) return false;
    const { gateway, metrics } = this.deps;
    const envelope = toEnvelope(n);
    let ended = false;
    let hold: NodeJS.Timeout | undefined;
    // Settles the delivery once: whatever throws after its outcome is known changes nothing; a throw
    // before sends the message back to the queue, as on the general path.
    const end = (final: boolean, err?: unknown): void => {
      if (ended) return;
      ended = true;
      if (err === undefined) this.settle(delivery, final);
      else this.failed(delivery, err);
    };
    try {
      if (!n.reliable) {
        gateway.offerToSession(sessionId, envelope, (local) => {
          try {
            metrics.delivery('session', false, local === 'delivered' ? 'delivered' : 'dropped');
            if (local === 'delivered') metrics.latency(false, n.enqueuedAt);
            end(true);
          } catch (err) {
            end(false, err);
          }
        });
        return true;
      }
      let decided = false;
      let late: ((delivered: boolean) => void) | undefined;
      const miss = (outcome: false | 'held', local: LocalOutcome | undefined) => {
        const delivered = outcome === 'held' ? new Promise<boolean>((resolve) => (late = resolve)) : Promise.resolve(false);
        this.afterMiss(sessionId, n, envelope, outcome, delivered, local === 'no_sockets', remotes).then(
          (final) => end(final),
          (err: unknown) => end(false, err),
        );
      };
      hold = setTimeout(() => {
        decided = true;
        miss('held', undefined);
      }, this.deps.ackHoldMs);
      gateway.offerToSession(sessionId, envelope, (local) => {
        try {
          if (decided) {
            late?.(local === 'delivered');
            return;
          }
          decided = true;
          clearTimeout(hold);
          if (local === 'delivered') {
            metrics.delivery('session', true, 'delivered');
            metrics.latency(true, n.enqueuedAt);
            end(true);
          } else {
            miss(false, local);
          }
        } catch (err) {
          end(false, err);
        }
      });
    } catch (err) {
      clearTimeout(hold);
      end(false, err);
    }
    return true;
  }

  /** Routes a valid notification to every target; true when every outcome is final. */
  async dispatch(notification: Notification): Promise<boolean> {
    const { gateway, metrics } = this.deps;
    const { reliable } = notification;
    if (notification.expiresAt <= Date.now()) {
      this.countAll(notification, 'expired');
      return true;
    }
    const sessionResults = notification.sessions.length > 0
      ? this.toSessions(notification)
      : Promise.resolve(true);
    if (!this.deps.cluster.connected && (notification.groups.length > 0 || notification.broadcast)) {
      // Other nodes' members cannot be reached now: a reliable message goes back to the queue (for
      // later, or for a node that can reach them); a volatile one is dropped.
      this.countGroups(notification, reliable ? 'failed' : 'dropped');
      const sessionsFinal = await sessionResults;
      return reliable ? false : sessionsFinal;
    }
    for (const group of notification.groups) {
      gateway.emitToGroup(group, toEnvelope(notification, group));
      metrics.delivery('group', reliable, 'delivered');
      metrics.latency(reliable, notification.enqueuedAt);
    }
    if (notification.broadcast) {
      gateway.broadcast(toEnvelope(notification));
      metrics.delivery('broadcast', reliable, 'delivered');
      metrics.latency(reliable, notification.enqueuedAt);
    }
    return sessionResults;
  }

  private async toSessions(notification: Notification): Promise<boolean> {
    const envelope = toEnvelope(notification);
    const deliver = notification.reliable ? this.reliableToSession : this.volatileToSession;
    const results = await Promise.all(notification.sessions.map((sessionId) => deliver(sessionId, notification, envelope)));
    return results.every(Boolean);
  }

  private reliableToSession = async (sessionId: string, n: Notification, envelope: Envelope): Promise<boolean> => {
    const { gateway, cluster, metrics, logger } = this.deps;
    const local = gateway.deliverToSession(sessionId, envelope);
    let localOutcome: LocalOutcome | undefined;
    void local.then((outcome) => (localOutcome = outcome));
    const remotes = await this.remoteNodes(sessionId);
    const attempts: Array<Promise<LocalOutcome | ForwardOutcome>> = [local];
    for (const node of remotes) {
      attempts.push(cluster.forward(node, sessionId, n).catch((err: unknown) => {
        logger.warn({ err, node, session: sessionId }, 'forward failed');
        return 'not_delivered' as const;
      }));
    }
    const delivered = firstDelivered(attempts);
    const outcome = await withinHold(delivered, this.deps.ackHoldMs);
    if (outcome === true) {
      metrics.delivery('session', true, 'delivered');
      metrics.latency(true, n.enqueuedAt);
      return true;
    }
    return this.afterMiss(sessionId, n, envelope, outcome, delivered, localOutcome === 'no_sockets', remotes);
  };

  /**
   * A reliable message no socket acked within the hold time (`held`: one may still ack later, `delivered`
   * tells) or at all (false): it expires, or goes to the inbox; true when that outcome is final.
   */
  private async afterMiss(
    sessionId: string,
    n: Notification,
    envelope: Envelope,
    outcome: false | 'held',
    delivered: Promise<boolean>,
    noLocalSockets: boolean,
    remotes: string[],
  ): Promise<boolean> {
    const { inbox, metrics, logger } = this.deps;
    if (n.expiresAt <= Date.now()) {
      metrics.delivery('session', true, 'expired');
      return true;
    }
    try {
      await inbox.store(sessionId, { ...envelope, expiresAt: n.expiresAt });
    } catch (err) {
      metrics.delivery('session', true, 'failed');
      logger.warn({ err, session: sessionId, id: n.id }, 'inbox write failed; the message goes back to the queue');
      return false;
    }
    metrics.delivery('session', true, 'stored');
    metrics.inbox.inc({ op: 'stored' });
    if (outcome === 'held') {
      // The slot is free again; the emit is still out there: a late ack takes the message out of the inbox.
      metrics.backpressureEvents.inc({ reason: 'slow_ack' });
      void delivered.then((late) => (late ? this.removeDelivered(sessionId, n) : undefined));
    }
    // `no_sockets` is known at once; an emit still waiting for its ack is not waited for here.
    await this.replayIfRegisteredMeanwhile(sessionId, noLocalSockets, remotes);
    return true;
  }

  private async removeDelivered(sessionId: string, n: Notification): Promise<void> {
    try {
      if (await this.deps.inbox.remove(sessionId, n.id)) this.deps.metrics.inbox.inc({ op: 'replayed' });
      this.deps.metrics.latency(true, n.enqueuedAt);
    } catch (err) {
      this.deps.logger.debug({ err, session: sessionId, id: n.id }, 'could not remove a late-acked message; it may be delivered again');
    }
  }

  /**
   * A session that registered (and replayed its inbox) while its message was on the way to the inbox
   * would otherwise see the message only at its next registration: ask the nodes it registered on
   * since to replay. Sockets that were offered the message and did not ack are not asked again.
   */
  private async replayIfRegisteredMeanwhile(sessionId: string, noLocalSockets: boolean, remotesBefore: string[]): Promise<void> {
    const { gateway, cluster, logger } = this.deps;
    if (noLocalSockets && gateway.localSockets(sessionId) > 0) gateway.replaySession(sessionId);
    const remotesNow = await this.remoteNodes(sessionId, true);
    for (const node of remotesNow) {
      if (remotesBefore.includes(node)) continue;
      cluster.requestReplay(node, sessionId).catch((err: unknown) => {
        logger.debug({ err, node, session: sessionId }, 'replay request failed; the message waits for the next registration');
      });
    }
  }

  private volatileToSession = async (sessionId: string, n: Notification, envelope: Envelope): Promise<boolean> => {
    const { gateway, cluster, metrics, logger } = this.deps;
    const local = await gateway.deliverToSession(sessionId, envelope);
    const remotes = await this.remoteNodes(sessionId);
    for (const node of remotes) {
      cluster.forward(node, sessionId, n).catch((err: unknown) => {
        logger.debug({ err, node, session: sessionId }, 'volatile forward failed');
      });
    }
    const outcome = local === 'delivered' ? 'delivered' : remotes.length > 0 ? 'forwarded' : 'dropped';
    metrics.delivery('session', false, outcome);
    if (outcome === 'delivered') metrics.latency(false, n.enqueuedAt);
    return true;
  };

  /** The directory being unavailable means only this node's sockets can be reached now. */
  private async remoteNodes(sessionId: string, fresh = false): Promise<string[]> {
    try {
      return await this.deps.cluster.remoteNodes(sessionId, { fresh });
    } catch (err) {
      this.deps.logger.warn({ err, session: sessionId }, 'session directory unavailable');
      return [];
    }
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

/** The attempt's result if it comes within the hold time, else `held`. */
function withinHold(delivered: Promise<boolean>, holdMs: number): Promise<boolean | 'held'> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve('held'), holdMs);
    void delivered.then((result) => {
      clearTimeout(timer);
      resolve(result);
    });
  });
}

/** True as soon as one attempt reports `delivered`; false once all finished without. */
function firstDelivered(attempts: Array<Promise<LocalOutcome | ForwardOutcome>>): Promise<boolean> {
  return new Promise((resolve) => {
    let waiting = attempts.length;
    for (const attempt of attempts) {
      void attempt.then((outcome) => {
        waiting -= 1;
        if (outcome === 'delivered') resolve(true);
        else if (waiting === 0) resolve(false);
      });
    }
  });
}
