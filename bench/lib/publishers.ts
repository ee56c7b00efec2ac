import { connect as connectAmqp, type Channel, type ChannelModel, type ConfirmChannel } from 'amqplib';
import { Redis } from 'ioredis';
import { Emitter } from '@socket.io/redis-emitter';
import type { Child } from './children.js';
import type { PeerCommand, PeerReport, RunCommand } from './ipc.js';
import { Pacer, type PacePlan } from './pacer.js';
import { envelope, messageId, type Target } from './payload.js';

/**
 * The business backends of the bench: they publish the same ~200-byte notifications, either as fast as
 * they can (within their own window and the run's gate) or at a fixed rate.
 */

/** Mode `max` with a gate that bounds the backlog (so that draining stays short), or a fixed rate. */
export type PublishPlan = PacePlan;

export interface Publisher {
  /** Messages the system has taken: confirmed by RabbitMQ, handed to Redis, or emitted by the peer. */
  published(): number;
  /** Messages sent so far, confirmed or not (what a gate must count). */
  sent(): number;
  /** Publishes that failed (nacked by RabbitMQ). */
  failed(): number;
  /** Sends a fixed-rate plan skipped because the sender had fallen behind its schedule (see Pacer). */
  skipped(): number;
  start(plan: PublishPlan): void;
  /** Stops publishing; resolves once every outstanding publish is confirmed (or failed). */
  stop(): Promise<void>;
  close(): Promise<void>;
}

/** Sequence numbers, unique across the run, so message ids never repeat between phases or systems. */
let lastSeq = 0;
export function nextSeq(): number {
  lastSeq += 1;
  return lastSeq;
}
export function reserveSeqs(count: number): number {
  const start = lastSeq + 1;
  lastSeq += count;
  return start;
}

/** A sharded ingest (PROTOCOL §9.1): publish through the exchange, routed by target; depth over the shards. */
export interface ShardedRoute {
  exchange: string;
  key: (seq: number) => string;
  queues: string[];
}

/**
 * A backend publishing to the node's queue as PROTOCOL §2 describes: amqplib, a confirm channel, persistent
 * JSON messages with `messageId` and a ms `timestamp`, at most `window` unconfirmed at a time. Also
 * watches the queue's depth (ready messages), which the run uses as its gate and reports.
 */
export class AmqpPublisher implements Publisher {
  private readonly pacer = new Pacer(this);
  private outstanding = 0;
  private confirmed = 0;
  private nacked = 0;
  private blocked = false;
  private idleWaiters: Array<() => void> = [];
  private watch: NodeJS.Timeout | undefined;
  /** Ready messages in the queue, polled every 100 ms. */
  depth = 0;
  maxDepth = 0;

  private constructor(
    private readonly connection: ChannelModel,
    private readonly channel: ConfirmChannel,
    private readonly inspect: Channel,
    private readonly queue: string,
    private readonly body: (seq: number, now: number) => Buffer,
    private readonly window: number,
    private readonly route: ShardedRoute | undefined,
  ) {
    channel.on('drain', () => {
      this.blocked = false;
      this.pacer.kick();
    });
    this.watch = setInterval(() => void this.pollDepth(), 100);
  }

  static async open(
    url: string, queue: string, body: (seq: number, now: number) => Buffer, window = 1000, route?: ShardedRoute,
  ): Promise<AmqpPublisher> {
    const connection = await connectAmqp(url, { clientProperties: { connection_name: 'push-center-bench:publisher' } });
    connection.on('error', () => undefined);
    const channel = await connection.createConfirmChannel();
    channel.on('error', () => undefined);
    const inspect = await connection.createChannel();
    inspect.on('error', () => undefined);
    return new AmqpPublisher(connection, channel, inspect, queue, body, window, route);
  }

  published(): number {
    return this.confirmed;
  }

  sent(): number {
    return this.pacer.sent;
  }

  failed(): number {
    return this.nacked;
  }

  skipped(): number {
    return this.pacer.skipped;
  }

  start(plan: PublishPlan): void {
    this.pacer.start(plan);
  }

  async stop(): Promise<void> {
    this.pacer.stop();
    await this.settled();
  }

  /** Resets the observed maximum depth (per phase). */
  resetMaxDepth(): void {
    this.maxDepth = this.depth;
  }

  async close(): Promise<void> {
    if (this.watch) clearInterval(this.watch);
    this.watch = undefined;
    await this.stop();
    await this.connection.close().catch(() => undefined);
  }

  hasRoom(): boolean {
    return !this.blocked && this.outstanding < this.window;
  }

  sendNext(): void {
    const seq = nextSeq();
    const now = Date.now();
    this.outstanding += 1;
    const settle = (err: unknown) => {
      this.outstanding -= 1;
      if (err) this.nacked += 1;
      else this.confirmed += 1;
      if (this.outstanding === 0) for (const resolve of this.idleWaiters.splice(0)) resolve();
      this.pacer.kick();
    };
    try {
      const properties = { persistent: true, contentType: 'application/json', messageId: messageId(seq), timestamp: now };
      const ok = this.route
        ? this.channel.publish(this.route.exchange, this.route.key(seq), this.body(seq, now), properties, settle)
        : this.channel.sendToQueue(this.queue, this.body(seq, now), properties, settle);
      if (!ok) this.blocked = true;
    } catch (err) {
      // The channel closed: count it and send no more (the run notices that nothing is delivered).
      this.blocked = true;
      settle(err);
    }
  }

  private settled(): Promise<void> {
    if (this.outstanding === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, 30_000);
      this.idleWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  private async pollDepth(): Promise<void> {
    try {
      let messageCount = 0;
      for (const queue of this.route?.queues ?? [this.queue]) messageCount += (await this.inspect.checkQueue(queue)).messageCount;
      this.depth = messageCount;
      if (messageCount > this.maxDepth) this.maxDepth = messageCount;
    } catch {
      // The queue is being deleted at the end of the run.
    }
  }
}

/**
 * What socket.io users pick instead of a message center: `@socket.io/redis-emitter` publishing into
 * Redis, where the socket.io server's `@socket.io/redis-adapter` picks it up. Fire and forget: no
 * confirm, no ack, nothing durable.
 */
export class EmitterPublisher implements Publisher {
  private readonly emitter: Emitter;
  private readonly pacer = new Pacer(this);

  private constructor(
    private readonly redis: Redis,
    key: string,
    private readonly target: (seq: number) => Target,
    private readonly reliable: boolean,
  ) {
    this.emitter = new Emitter(redis, { key });
  }

  static async open(url: string, key: string, target: (seq: number) => Target, reliable: boolean): Promise<EmitterPublisher> {
    const redis = new Redis(url, { lazyConnect: true, connectionName: 'push-center-bench:emitter' });
    redis.on('error', () => undefined);
    await redis.connect();
    return new EmitterPublisher(redis, key, target, reliable);
  }

  published(): number {
    return this.pacer.sent;
  }

  sent(): number {
    return this.pacer.sent;
  }

  failed(): number {
    return 0;
  }

  skipped(): number {
    return this.pacer.skipped;
  }

  start(plan: PublishPlan): void {
    this.pacer.start(plan);
  }

  async stop(): Promise<void> {
    this.pacer.stop();
    // PUBLISHes already written are in Redis's hands; wait for their replies so none is in flight.
    await this.redis.ping().catch(() => undefined);
  }

  async close(): Promise<void> {
    await this.stop();
    this.redis.disconnect();
  }

  hasRoom(): boolean {
    return true;
  }

  sendNext(): void {
    const seq = nextSeq();
    const target = this.target(seq);
    const room = 'session' in target ? `s:${target.session}` : `g:${target.group}`;
    const group = 'group' in target ? target.group : undefined;
    const operator = this.reliable ? this.emitter.to(room) : this.emitter.to(room).volatile;
    operator.emit('message', envelope(seq, this.reliable, Date.now(), group));
  }
}

/** Drives a peer that generates its own messages (the direct socket.io server) over IPC. */
export class PeerGenerator implements Publisher {
  private emitted = 0;
  private skippedByPeer = 0;
  private limiter: NodeJS.Timeout | undefined;
  private readonly onReport = (report: PeerReport) => {
    if (report.type === 'progress' || report.type === 'halted') {
      this.emitted = report.sent;
      this.skippedByPeer = report.skipped;
    }
  };

  constructor(private readonly peer: Child, private readonly run: Omit<RunCommand, 'type' | 'mode' | 'rate' | 'seqStart'>) {
    peer.process.on('message', this.onReport);
  }

  published(): number {
    return this.emitted;
  }

  sent(): number {
    return this.emitted;
  }

  failed(): number {
    return 0;
  }

  skipped(): number {
    return this.skippedByPeer;
  }

  start(plan: PublishPlan): void {
    // A generous block of sequence numbers: the peer numbers its messages itself.
    const seqStart = reserveSeqs(50_000_000);
    this.send({ type: 'run', ...this.run, mode: plan.mode, rate: plan.rate, seqStart });
    const gate = plan.gate;
    if (plan.mode === 'max' && gate) {
      // The peer sends on its own; the run's backlog bound reaches it as a limit, refreshed every 20 ms.
      const limit = () => this.send({ type: 'limit', maxSent: this.emitted + Math.max(0, Math.floor(gate())) });
      limit();
      this.limiter = setInterval(limit, 20);
    }
  }

  stop(): Promise<void> {
    clearInterval(this.limiter);
    this.limiter = undefined;
    return new Promise((resolve) => {
      const finish = () => {
        clearTimeout(timer);
        this.peer.process.off('message', onHalted);
        resolve();
      };
      const onHalted = (report: PeerReport) => {
        if (report.type === 'halted') finish();
      };
      const timer = setTimeout(finish, 30_000);
      this.peer.process.on('message', onHalted);
      this.peer.exited.then(finish, finish);
      this.send({ type: 'halt' });
    });
  }

  async close(): Promise<void> {
    clearInterval(this.limiter);
    this.peer.process.off('message', this.onReport);
  }

  private send(command: PeerCommand): void {
    if (this.peer.alive() && this.peer.process.connected) this.peer.process.send(command);
  }
}
