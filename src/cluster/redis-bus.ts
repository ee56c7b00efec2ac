import { randomUUID } from 'node:crypto';
import type { Notification } from '../notification/schema.js';
import type { Logger } from '../observability/logger.js';
import type { ForwardHandler, ForwardOutcome, NodeBus, ReplayHandler } from './bus.js';
import { type DeliverFrame, type OutcomeFrame, parseFrame, type ReplayFrame } from './bus-frames.js';
import { nodeIdInUse, requireNodeId, requirePositiveMs } from './checks.js';
import { answerForward, PendingForwards } from './forwarding.js';
import {
  clientsReady,
  DEFAULT_START_TIMEOUT_MS,
  isCluster,
  listenTo,
  mastersOf,
  requireReady,
  type RedisClient,
  type RedisNodeOptions,
} from './redis-client.js';
import { ClusterNames } from './redis-keys.js';

export interface RedisBusOptions extends RedisNodeOptions {
  /** How long a reliable forward waits for the owning node's outcome: the ack timeout plus a margin. */
  forwardTimeoutMs: number;
}

/** How much of a malformed frame goes into the log. */
const LOGGED_FRAME_CHARS = 200;

/** The pub/sub commands of the node channels, and the event their messages arrive as. */
interface NodeChannels {
  /** Resolves with how many connections received the message. */
  publish(channel: string, message: string): Promise<number>;
  subscribe(channel: string): Promise<unknown>;
  unsubscribe(channel: string): Promise<unknown>;
  /** How many connections listen on the channel. */
  listeners(channel: string): Promise<number>;
  event: 'message' | 'smessage';
}

/**
 * Classic pub/sub on one Redis. On a Redis Cluster, sharded pub/sub: a message goes to the one master
 * serving the channel's slot, and SPUBLISH answers how many listen there, which is everyone who listens.
 * A classic PUBLISH would be copied to every master, and would answer only for the master it was sent to,
 * so a forward to a node nobody hears could not be told from one that arrived.
 */
function nodeChannels(redis: RedisClient, subscriber: RedisClient): NodeChannels {
  if (!isCluster(redis)) {
    return {
      publish: (channel, message) => redis.publish(channel, message),
      subscribe: (channel) => subscriber.subscribe(channel),
      unsubscribe: (channel) => subscriber.unsubscribe(channel),
      listeners: async (channel) => Number((await redis.pubsub('NUMSUB', channel))[1] ?? 0),
      event: 'message',
    };
  }
  if (!isCluster(subscriber) || !subscriber.options.shardedSubscribers) {
    throw new Error('on a Redis Cluster the node bus listens with sharded pub/sub: its subscriber must be a Cluster client with shardedSubscribers (see duplicateForSubscriptions)');
  }
  return {
    publish: async (channel, message) => Number(await redis.spublish(channel, message)),
    subscribe: (channel) => subscriber.ssubscribe(channel),
    unsubscribe: (channel) => subscriber.sunsubscribe(channel),
    // Only the master serving the channel's slot has its listeners; the others answer 0.
    listeners: async (channel) => {
      const counts = await Promise.all(mastersOf(redis).map((master) => master.pubsub('SHARDNUMSUB', channel)));
      return counts.reduce((sum, [, count]) => sum + Number(count ?? 0), 0);
    },
    event: 'smessage',
  };
}

/**
 * The node bus on Redis: one pub/sub channel per node (layout in `redis-keys.ts`, frames in
 * `bus-frames.ts`), so a forward reaches exactly the node that holds the session. On a Redis Cluster the
 * channels are sharded (`nodeChannels`).
 *
 * Guarantees, beyond the port's:
 * - Every operation rejects at once, rather than waiting, while a Redis client it needs is not ready
 *   (a connection that died unnoticed fails its commands when ioredis notices, within its retry limit).
 *   Pub/sub is at-most-once: a frame lost on a broken connection is a timeout, never a duplicate.
 * - Nothing here rejects unobserved or throws from a Redis event: a reply that cannot be sent is logged
 *   (the sender's timeout settles its forward).
 *
 * Both clients belong to the caller, who should create them with `enableOfflineQueue: false` and
 * `maxRetriesPerRequest: 0` (see `redis-client.ts`), wait until they are ready, call `start()`, and quit
 * them after `close()`. The subscriber must be a connection of its own (`duplicate()`): a subscribed
 * connection runs no other commands; on a Cluster, a Cluster client with `shardedSubscribers` (both as
 * `duplicateForSubscriptions` makes them). The node's `RedisDirectory` may share it; each listens only to
 * its own channels.
 */
export class RedisBus implements NodeBus {
  readonly nodeId: string;
  private readonly channel: string;
  private readonly names: ClusterNames;
  private readonly startTimeoutMs: number;
  private readonly logger: Logger;
  private readonly pending: PendingForwards;
  private readonly channels: NodeChannels;
  private handler: ForwardHandler | undefined;
  private replayHandler: ReplayHandler | undefined;
  private stopListening: (() => void) | undefined;
  private started = false;
  private subscribed = false;
  private closed = false;
  private closing: Promise<void> | undefined;

  constructor(
    private readonly redis: RedisClient,
    private readonly subscriber: RedisClient,
    options: RedisBusOptions,
  ) {
    this.channels = nodeChannels(redis, subscriber);
    requirePositiveMs('forwardTimeoutMs', options.forwardTimeoutMs);
    requireNodeId(options.nodeId);
    this.nodeId = options.nodeId;
    this.names = new ClusterNames(options.keyPrefix);
    this.channel = this.names.busChannel(this.nodeId);
    this.startTimeoutMs = options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
    this.logger = options.logger.child({ component: 'bus' });
    this.pending = new PendingForwards(options.forwardTimeoutMs, this.logger);
  }

  /** Both clients are ready, it listens on its channel and it has not been closed. */
  get connected(): boolean {
    return this.listening && this.redis.status === 'ready';
  }

  /** Subscribed to this node's channel over a ready connection: frames sent to this node reach it now. */
  get listening(): boolean {
    return this.subscribed && !this.closed && this.subscriber.status === 'ready';
  }

  /**
   * Subscribes to this node's channel. Refuses a node id another running node subscribes with. Start it
   * before the node's `RedisDirectory`, which announces the node alive.
   */
  async start(): Promise<void> {
    if (this.closed) throw new Error('RedisBus was closed; create a new one');
    if (this.started) throw new Error('RedisBus.start() was called twice');
    this.started = true;
    this.stopListening = listenTo(this.redis, this.subscriber, this.logger, this.onMessage, this.channels.event);
    try {
      await clientsReady(this.redis, this.subscriber, this.startTimeoutMs);
      if ((await this.channels.listeners(this.channel)) > 0) throw nodeIdInUse(this.nodeId, ` (it listens on ${this.channel})`);
      await this.channels.subscribe(this.channel);
      this.subscribed = true;
    } catch (err) {
      await this.close();
      throw err;
    }
    this.logger.debug({ node: this.nodeId, channel: this.channel }, 'listening on the node bus');
  }

  /**
   * Publishes the message on the node's channel; `not_delivered` at once when nobody subscribes to it.
   * Rejects when a Redis client is not ready or the publish fails, and after `close()`.
   */
  async forward(nodeId: string, sessionId: string, notification: Notification): Promise<ForwardOutcome> {
    if (this.closed) throw new Error('the node bus is closed; cannot forward');
    requireReady(this.redis);
    // The outcome comes back through the subscriber: without it a reliable forward could only time out.
    requireReady(this.subscriber);
    const corr = randomUUID();
    const frame: DeliverFrame = { type: 'deliver', from: this.nodeId, corr, session: sessionId, notification };
    const payload = JSON.stringify(frame);
    const channel = this.names.busChannel(nodeId);
    if (!notification.reliable) {
      return (await this.channels.publish(channel, payload)) > 0 ? 'delivered' : 'not_delivered';
    }
    return this.pending.wait(corr, async () => {
      if ((await this.channels.publish(channel, payload)) === 0) this.pending.settle(corr, 'not_delivered');
    });
  }

  onForward(handler: ForwardHandler): void {
    this.handler = handler;
  }

  async requestReplay(nodeId: string, sessionId: string): Promise<void> {
    if (this.closed) throw new Error('the node bus is closed; cannot ask for a replay');
    requireReady(this.redis);
    const frame: ReplayFrame = { type: 'replay', corr: randomUUID(), session: sessionId };
    await this.channels.publish(this.names.busChannel(nodeId), JSON.stringify(frame));
  }

  onReplay(handler: ReplayHandler): void {
    this.replayHandler = handler;
  }

  /** Settles every pending forward as `not_delivered` and unsubscribes; the clients stay open. */
  close(): Promise<void> {
    this.closing ??= this.leave();
    return this.closing;
  }

  private async leave(): Promise<void> {
    this.closed = true;
    this.pending.settleAll();
    if (!this.started) return;
    try {
      if (this.subscribed && this.subscriber.status === 'ready') await this.channels.unsubscribe(this.channel);
    } catch (err) {
      this.logger.debug({ err }, 'unsubscribe failed while closing');
    }
    this.subscribed = false;
    this.stopListening?.();
  }

  private onMessage = (channel: string, message: string): void => {
    if (channel !== this.channel) return;
    const frame = parseFrame(message);
    if (!frame) {
      this.logger.warn({ frame: message.slice(0, LOGGED_FRAME_CHARS) }, 'ignored a malformed frame on the node bus');
      return;
    }
    if (frame.type === 'outcome') {
      this.pending.settle(frame.corr, frame.outcome);
    } else if (frame.type === 'replay') {
      if (!this.closed) this.replayHandler?.(frame.session);
    } else {
      void this.deliver(frame);
    }
  };

  /** Runs the forward handler and, for a reliable message, reports the outcome; never rejects. */
  private async deliver({ from, corr, session, notification }: DeliverFrame): Promise<void> {
    const receiver = { handler: this.handler, closed: this.closed, logger: this.logger };
    const outcome = await answerForward(receiver, from, session, notification);
    if (!notification.reliable) return;
    const reply: OutcomeFrame = { type: 'outcome', corr, outcome };
    try {
      await this.channels.publish(this.names.busChannel(from), JSON.stringify(reply));
    } catch (err) {
      // The sender's timeout settles its forward as not_delivered.
      this.logger.warn({ err, to: from, session, id: notification.id }, 'could not report a forward outcome');
    }
  }
}
