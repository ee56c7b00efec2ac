import { connect } from 'amqplib';
import type { Channel, ChannelModel } from 'amqplib';
import type { Logger } from '../../observability/logger.js';
import { redact } from '../../util/redact.js';
import { ShardExchangePluginError, TopologyMismatchError } from './topology.js';

const CONNECT_TIMEOUT_MS = 10_000;

/**
 * Publishing and consuming use separate connections, because RabbitMQ's memory and disk alarms block
 * publishing connections only: consumers keep draining the queue while publishers are held.
 */
export type Role = 'publish' | 'consume' | 'receipts';

/** One connection, as it is while its channel is being set up. */
export interface Opening {
  readonly role: Role;
  readonly connection: ChannelModel;
  /** False once the connection or a watched channel closed (or set-up failed); never true again. */
  alive: boolean;
  /** Set while RabbitMQ blocks this connection (a resource alarm): the reason it gave. */
  blocked: string | undefined;
}

/** A connection whose set-up finished: `session` is what the owner built on it (its channel and more). */
export interface Link<S extends Session> extends Opening {
  readonly session: S;
}

export interface Session {
  readonly channel: Channel;
}

export interface ReconnectingLinkOptions<S extends Session> {
  role: Role;
  /** AMQP_URL; `?heartbeat=` and the vhost are honoured as amqplib parses them. */
  url: string;
  logger: Logger;
  /**
   * Shown by RabbitMQ (management UI, `rabbitmqctl list_connections client_properties`) as
   * `<name>:<role>`. Default `push-center`.
   */
  connectionName?: string;
  /** Back-off between reconnection attempts: doubles from `initialDelayMs` (500) up to `maxDelayMs` (30000). */
  reconnect?: { initialDelayMs: number; maxDelayMs: number };
  /** Keeps `blocked` up to date and logs the alarms (publishing connections only are blocked). Default false. */
  blockable?: boolean;
  /**
   * Builds the session on a new connection: its channel, topology, and so on. `watch` each channel it
   * opens, so that its closing loses the link. A throw fails the attempt; the connection is then closed.
   */
  setUp(opening: Opening, watch: (channel: Channel) => void): Promise<S>;
  /** The link is up (after `open` or a reconnection). */
  onUp(link: Link<S>): void;
  /**
   * The current link closed (its connection or a watched channel): release what hangs on it.
   * `reconnecting` is false once `stop` was called.
   */
  onLost(link: Link<S>, reconnecting: boolean): void;
}

/**
 * One AMQP connection of one role and what the owner set up on it, kept up: once `open` succeeded, a
 * lost connection or channel is reopened with back-off (±20 % jitter, so that nodes do not all reconnect
 * at the same instant after a broker restart) until `stop`.
 *
 * Guarantees:
 * - `current` is a link whose set-up finished and that has not closed since; undefined otherwise;
 * - at most one attempt to open is under way at a time, and none starts after `stop`;
 * - 'error' events on the connection and watched channels are logged, never thrown.
 */
export class ReconnectingLink<S extends Session> {
  private link: Link<S> | undefined;
  private attempt = 0;
  private timer: NodeJS.Timeout | undefined;
  private nextAt = 0;
  private opening: Promise<void> | undefined;
  private stopped = false;
  private readonly log: Logger;

  constructor(private readonly options: ReconnectingLinkOptions<S>) {
    this.log = options.logger;
  }

  get current(): Link<S> | undefined {
    return this.link;
  }

  /** When the next reconnection attempt starts (ms since epoch); in the past when none is scheduled. */
  get nextAttemptAt(): number {
    return this.nextAt;
  }

  /** Opens the link once, without retrying: rejects with what went wrong. */
  open(): Promise<void> {
    const opening = this.openLink();
    this.opening = opening;
    const forget = (): void => {
      if (this.opening === opening) this.opening = undefined;
    };
    opening.then(forget, forget);
    return opening;
  }

  /** No more reconnection; resolves once an attempt under way has settled. The link stays open. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.opening?.catch(() => undefined);
  }

  /**
   * Closes the current link for good (call `stop` first): `release` first, to settle what hangs on it,
   * then its channel and its connection. Its closing is not reported as a loss.
   */
  async close(release: (link: Link<S>) => void): Promise<void> {
    const link = this.link;
    this.link = undefined;
    if (!link) return;
    release(link);
    link.alive = false;
    await closeQuietly(link.session.channel);
    await closeQuietly(link.connection);
  }

  private async openLink(): Promise<void> {
    const { role, url, connectionName } = this.options;
    let connection: ChannelModel;
    try {
      connection = await connect(url, {
        clientProperties: { connection_name: `${connectionName ?? 'push-center'}:${role}` },
        timeout: CONNECT_TIMEOUT_MS,
      });
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      throw new Error(`cannot connect to RabbitMQ at ${redact(url)} (AMQP_URL): ${reason}`, { cause: err });
    }
    const opening: Opening = { role, connection, alive: true, blocked: undefined };
    this.watch(connection, opening, 'connection');
    if (this.options.blockable) this.watchBlocked(opening);
    let session: S;
    try {
      session = await this.options.setUp(opening, (channel) => this.watch(channel, opening, 'channel'));
      if (!opening.alive) throw new Error(`the RabbitMQ ${role} connection closed while it was being set up`);
      if (this.stopped) throw new Error('the queue was closed while connecting');
    } catch (err) {
      opening.alive = false;
      await closeQuietly(connection);
      throw err;
    }
    const link: Link<S> = Object.assign(opening, { session });
    this.link = link;
    this.options.onUp(link);
  }

  /** Listens for 'error' (so nothing crashes the process) and 'close' (the link is lost). */
  private watch(emitter: ChannelModel | Channel, opening: Opening, what: 'connection' | 'channel'): void {
    const { role } = opening;
    emitter.on('error', (err: Error) => {
      this.log.warn({ err, role }, `RabbitMQ ${role} ${what} error`);
    });
    emitter.on('handler-error', (err: Error, event: string) => {
      this.log.error({ err, event, role }, `a listener on the RabbitMQ ${role} ${what} threw`);
    });
    emitter.on('close', (err?: Error) => this.lost(opening, err));
  }

  private watchBlocked(opening: Opening): void {
    opening.connection.on('blocked', (reason: string) => {
      opening.blocked = reason || 'resource alarm';
      this.log.warn({ reason }, 'RabbitMQ blocks publishing (memory or disk alarm): publishes fail with 503');
    });
    opening.connection.on('unblocked', () => {
      opening.blocked = undefined;
      this.log.info('RabbitMQ unblocked publishing');
    });
  }

  /** The connection or a channel closed: drop the link and reconnect (unless stopped). */
  private lost(opening: Opening, err: Error | undefined): void {
    if (!opening.alive) return;
    opening.alive = false;
    const link = this.link === opening ? this.link : undefined;
    if (link) {
      this.link = undefined;
      this.options.onLost(link, !this.stopped);
    }
    void closeQuietly(opening.connection);
    if (!link || this.stopped) return;
    const { role } = opening;
    this.log.warn({ err, role }, `RabbitMQ ${role} connection lost; reconnecting`);
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.stopped || this.timer) return;
    const { role } = this.options;
    const { initialDelayMs, maxDelayMs } = this.options.reconnect ?? { initialDelayMs: 500, maxDelayMs: 30_000 };
    const base = Math.min(maxDelayMs, initialDelayMs * 2 ** this.attempt);
    const delay = Math.round(Math.min(maxDelayMs, base * (0.8 + 0.4 * Math.random())));
    this.attempt += 1;
    this.nextAt = Date.now() + delay;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.open().then(
        () => {
          this.attempt = 0;
          this.log.info({ role }, `RabbitMQ ${role} connection re-established`);
        },
        (err: unknown) => {
          if (this.stopped) return;
          // A mismatch or a missing plugin needs an operator; a broker that is away usually comes back.
          const level = err instanceof TopologyMismatchError || err instanceof ShardExchangePluginError ? 'error' : 'warn';
          this.log[level]({ err, role, attempt: this.attempt }, `reconnecting to RabbitMQ failed; retrying`);
          this.scheduleReconnect();
        },
      );
    }, delay);
  }
}

async function closeQuietly(closable: { close(): Promise<void> } | undefined): Promise<void> {
  try {
    await closable?.close();
  } catch {
    // Already closed: nothing left to release.
  }
}
