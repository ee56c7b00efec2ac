import type { SessionDirectory } from '../cluster/directory.js';
import type { LocalOutcome, LocalSessions } from '../dispatch/local-sessions.js';
import type { Missed } from '../inbox/inbox.js';
import type { Envelope } from '../notification/schema.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { ReceiptRecorder } from '../receipts/recorder.js';
import type { Authenticator } from './auth.js';
import { Connection, type ConnectionDeps, type ConnectionOptions } from './connection.js';
import { UnauthorizedError, type TokenIdentity } from './jwt-auth.js';
import type { PushServer, PushSocket, RegisterResponse } from './protocol.js';
import { RateLimiter } from './rate-limiter.js';
import { authorize, readRegistration, refuse } from './register.js';

export interface GatewayOptions extends ConnectionOptions {
  /** Take the client address from X-Forwarded-For (only behind a proxy you control). */
  trustProxy: boolean;
  /** Connections per client address per 10 s (0: no limit). */
  connectsPer10s: number;
  /** `register` calls per client address per 10 s (0: no limit). */
  registersPer10s: number;
  maxIdLength: number;
  maxGroups: number;
}

const GROUP_ROOM = 'g:';

/** A message refused as `behind` is in the inbox within a Redis round trip; this is long past it. */
const SPILL_STALE_MS = 10_000;

/**
 * The socket.io side of a node: admits sockets (rate limit, handshake auth), registers their sessions
 * and groups (PROTOCOL §3), keeps this node's part of the session directory, and offers messages to the
 * sessions' connections. Everything about one socket is its `Connection`.
 */
export class Gateway implements LocalSessions {
  private readonly sessions = new Map<string, Set<Connection>>();
  private readonly connections = new Set<Connection>();
  private readonly connects: RateLimiter;
  private readonly registers: RateLimiter;
  private readonly shared: ConnectionDeps;
  /**
   * Per session: messages `offer` answered `behind` for that are not in the inbox yet (`spilled`), and
   * when that count last changed. A count unchanged for `SPILL_STALE_MS` no longer holds a backlog: a
   * `spilled` that never came must not hold one forever.
   */
  private readonly spills = new Map<string, { count: number; at: number }>();
  /**
   * Group and broadcast messages handed to this node's sockets and not reported yet: id -> sockets. The
   * node that emitted one takes its count at once (`emitToGroup`); what came from another node's emit
   * is reported here, as this node's share of the receipt.
   */
  private readonly reached = new Map<string, { sockets: number; broadcast: boolean }>();
  private reportScheduled = false;

  constructor(
    private readonly io: PushServer,
    private readonly deps: Omit<ConnectionDeps, 'options' | 'spillsPending'> & {
      options: GatewayOptions;
      auth: Authenticator;
      directory: Pick<SessionDirectory, 'setLocalSockets'>;
      receipts: ReceiptRecorder;
    },
  ) {
    const { options, metrics, logger } = deps;
    this.shared = {
      options,
      fastPath: deps.fastPath,
      inbox: deps.inbox,
      receipts: deps.receipts,
      metrics,
      logger,
      spillsPending: (sessionId) => {
        const spill = this.spills.get(sessionId);
        return spill !== undefined && Date.now() - spill.at < SPILL_STALE_MS;
      },
    };
    this.connects = new RateLimiter(options.connectsPer10s, 10_000);
    this.registers = new RateLimiter(options.registersPer10s, 10_000);
    io.use((socket, next) => {
      if (!this.connects.take(this.address(socket))) {
        metrics.socketRefusals.inc({ reason: 'connect_rate_limited' });
        next(new Error('rate_limited'));
        return;
      }
      next();
    });
    io.use((socket, next) => {
      deps.auth
        .authenticate(socket.handshake.auth)
        .then((identity) => {
          socket.data = { identity };
          next();
        })
        .catch((err: unknown) => {
          const reason = err instanceof UnauthorizedError ? err.reason : 'internal';
          metrics.socketRefusals.inc({ reason: `auth_${reason}` });
          logger.info({ reason, address: socket.handshake.address }, 'socket refused: unauthorized');
          // The client learns only that it is unauthorized; the reason stays in the logs and metrics.
          next(new Error('unauthorized'));
        });
    });
    io.on('connection', (socket) => this.onConnection(socket));
  }

  /** Sockets connected to this node. */
  get connectionCount(): number {
    return this.connections.size;
  }

  /** Sessions with a socket on this node. */
  get sessionCount(): number {
    return this.sessions.size;
  }

  sockets(sessionId: string): number {
    return this.sessions.get(sessionId)?.size ?? 0;
  }

  offer(sessionId: string, envelope: Envelope, done: (outcome: LocalOutcome) => void): void {
    const ready = this.ready(sessionId, true);
    if (typeof ready === 'string') {
      if (ready === 'behind') this.spills.set(sessionId, { count: (this.spills.get(sessionId)?.count ?? 0) + 1, at: Date.now() });
      done(ready);
      return;
    }
    if (!Array.isArray(ready)) {
      ready.sendWithAck(envelope, (acked) => done(acked ? 'delivered' : 'not_delivered'));
      return;
    }
    let waiting = ready.length;
    let answered = false;
    for (const connection of ready) {
      connection.sendWithAck(envelope, (acked) => {
        waiting -= 1;
        if (answered || (!acked && waiting > 0)) return;
        answered = true;
        done(acked ? 'delivered' : 'not_delivered');
      });
    }
  }

  send(sessionId: string, envelope: Envelope): 'delivered' | 'behind' | 'no_sockets' {
    const ready = this.ready(sessionId, false);
    if (typeof ready === 'string') return ready;
    if (Array.isArray(ready)) for (const connection of ready) connection.send(envelope);
    else ready.send(envelope);
    return 'delivered';
  }

  /**
   * The session's connections that can take a message now (one, or several), or why there are none. A
   * slow socket is counted: its reliable messages go to the inbox, volatile ones are dropped.
   */
  private ready(sessionId: string, reliable: boolean): Connection | Connection[] | 'no_sockets' | 'behind' {
    const connections = this.sessions.get(sessionId);
    if (!connections || connections.size === 0) return 'no_sockets';
    let ready: Connection | Connection[] | undefined;
    let readyCount = 0;
    for (const connection of connections) {
      if (!connection.canTake(reliable)) continue;
      // One socket per session is the common case: no array for it.
      if (ready === undefined) ready = connection;
      else if (Array.isArray(ready)) ready.push(connection);
      else ready = [ready, connection];
      readyCount += 1;
    }
    if (readyCount < connections.size) {
      this.deps.metrics.backpressureEvents.inc({ reason: 'slow_socket' }, connections.size - readyCount);
    }
    return ready ?? 'behind';
  }

  spilled(sessionId: string): void {
    const left = (this.spills.get(sessionId)?.count ?? 0) - 1;
    if (left > 0) this.spills.set(sessionId, { count: left, at: Date.now() });
    else this.spills.delete(sessionId);
    this.replay(sessionId);
  }

  replay(sessionId: string): void {
    for (const connection of this.sessions.get(sessionId) ?? []) connection.inboxChanged();
  }

  emitToGroup(group: string, envelope: Envelope): number {
    const room = this.io.to(GROUP_ROOM + group);
    (envelope.reliable ? room : room.volatile).emit(envelope.event, envelope);
    return this.takeReached(envelope.id);
  }

  broadcast(envelope: Envelope): number {
    (envelope.reliable ? this.io : this.io.volatile).emit(envelope.event, envelope);
    return this.takeReached(envelope.id);
  }

  /** The sockets this node's part of an emit reached (the adapter hands them the packet synchronously). */
  private takeReached(id: string): number {
    const reached = this.reached.get(id);
    this.reached.delete(id);
    return reached?.sockets ?? 0;
  }

  /** Counts each group or broadcast envelope a socket is handed (socket.io calls this for every outgoing packet). */
  private readonly countFanOut = (_event: string, envelope: unknown): void => {
    const fanOut = envelope as Partial<Envelope> | undefined;
    if (typeof fanOut?.id !== 'string' || (fanOut.group === undefined && fanOut.broadcast !== true)) return;
    const reached = this.reached.get(fanOut.id);
    if (reached) reached.sockets += 1;
    else this.reached.set(fanOut.id, { sockets: 1, broadcast: fanOut.broadcast === true });
    if (this.reportScheduled) return;
    this.reportScheduled = true;
    setImmediate(this.reportReached);
  };

  /** What other nodes' emits reached here: this node's share of their receipts (not final: the emitting node reports that). */
  private readonly reportReached = (): void => {
    this.reportScheduled = false;
    for (const [id, { sockets, broadcast }] of this.reached) {
      this.deps.receipts.outcome(id, 'delivered', { target: broadcast ? 'broadcast' : 'group', sockets }, false);
    }
    this.reached.clear();
  };

  /** Closes every connection so the clients reconnect (to another node, behind a load balancer). */
  disconnectAll(): void {
    // Closing the transport (not a socket.io "disconnect" packet, after which clients give up) makes
    // socket.io-client reconnect by itself.
    for (const connection of this.connections) connection.socket.conn.close();
  }

  private onConnection(socket: PushSocket): void {
    const { metrics, logger } = this.deps;
    metrics.connectedSockets.inc();
    const connection = new Connection(socket, this.shared);
    this.connections.add(connection);
    if (this.deps.receipts.on) socket.onAnyOutgoing(this.countFanOut);
    const identity = socket.data.identity as TokenIdentity | undefined;
    if (identity) {
      void this.register(connection, { sessionId: identity.sessionId, groups: identity.groups });
      if (identity.expiresAt !== undefined) connection.expireAt(identity.expiresAt);
    }
    socket.on('register', (request, ack) => {
      const answer = (response: RegisterResponse) => {
        if (!response.ok) metrics.socketRefusals.inc({ reason: `register_${response.error.code}` });
        if (typeof ack === 'function') ack(response);
      };
      if (!this.registers.take(this.address(socket))) {
        answer(refuse('rate_limited', `too many register calls; retry in ${this.registers.retryAfterSeconds()} s`));
        return;
      }
      void this.register(connection, request).then(answer);
    });
    socket.on('disconnect', (reason) => {
      metrics.connectedSockets.dec();
      metrics.socketDisconnects.inc({ reason: reason.replace(/ /g, '_') });
      this.connections.delete(connection);
      connection.close();
      const sessionId = connection.sessionId;
      if (sessionId !== undefined) void this.leaveSession(connection, sessionId);
      logger.debug({ socket: socket.id, session: sessionId, reason }, 'socket disconnected');
    });
  }

  private async register(connection: Connection, request: unknown): Promise<RegisterResponse> {
    const { socket } = connection;
    const identity = socket.data.identity;
    const registration = readRegistration(request, this.deps.options, identity?.sessionId);
    if ('ok' in registration) return registration;
    const refusal = authorize(registration, identity);
    if (refusal) return refusal;
    const { sessionId, groups } = registration;

    const previous = connection.sessionId;
    for (const group of connection.groups) if (!groups.includes(group)) socket.leave(GROUP_ROOM + group);
    for (const group of groups) socket.join(GROUP_ROOM + group);
    connection.groups = groups;
    if (previous !== sessionId) {
      if (previous !== undefined) await this.leaveSession(connection, previous);
      connection.sessionId = sessionId;
      let connections = this.sessions.get(sessionId);
      if (!connections) {
        connections = new Set();
        this.sessions.set(sessionId, connections);
        this.deps.metrics.sessions.set(this.sessions.size);
      }
      connections.add(connection);
      try {
        await this.deps.directory.setLocalSockets(sessionId, connections.size);
      } catch (err) {
        this.deps.logger.warn({ err, session: sessionId }, 'session directory update failed');
        return refuse('unavailable', 'the session directory is unavailable; register again shortly');
      }
    }
    this.deps.logger.debug({ socket: socket.id, session: sessionId, groups }, 'socket registered');
    const [missed, waiting] = await Promise.all([this.takeMissed(sessionId), this.inboxWaiting(sessionId)]);
    // Only a session with something in its inbox replays: a replay holds back newer messages (order), and
    // a tab held back while another tab of its session acks never gets those. What is stored from now on
    // reaches this socket anyway: the storing node finds it in the directory and asks for a replay.
    // After the answer has gone out, so the client has its handlers in place when the inbox arrives.
    if (waiting) setImmediate(() => connection.replay());
    return missed ? { ok: true, sessionId, groups, missed } : { ok: true, sessionId, groups };
  }

  /** Whether the session's inbox holds anything; when that cannot be read, a replay finds out. */
  private async inboxWaiting(sessionId: string): Promise<boolean> {
    try {
      return (await this.deps.inbox.size(sessionId)) > 0;
    } catch {
      return true;
    }
  }

  /** The gap notice of a register answer (PROTOCOL §4.1); a failure only costs the notice, not the registration. */
  private async takeMissed(sessionId: string): Promise<Missed | undefined> {
    try {
      const missed = await this.deps.inbox.takeMissed(sessionId);
      if (missed) {
        this.deps.metrics.gapNotices.inc();
        this.deps.logger.info({ session: sessionId, ...missed }, 'gap notice: messages were dead-lettered since the session last registered');
      }
      return missed;
    } catch (err) {
      this.deps.logger.warn({ err, session: sessionId }, 'could not read the missed record; no gap notice this time');
      return undefined;
    }
  }

  private async leaveSession(connection: Connection, sessionId: string): Promise<void> {
    const connections = this.sessions.get(sessionId);
    if (!connections?.delete(connection)) return;
    if (connections.size === 0) {
      this.sessions.delete(sessionId);
      this.deps.metrics.sessions.set(this.sessions.size);
    }
    try {
      await this.deps.directory.setLocalSockets(sessionId, connections.size);
    } catch (err) {
      this.deps.logger.warn({ err, session: sessionId }, 'session directory update failed');
    }
  }

  /** The client's address: the socket's peer, or the first X-Forwarded-For hop behind a trusted proxy. */
  private address(socket: PushSocket): string {
    if (this.deps.options.trustProxy) {
      const forwarded = socket.handshake.headers['x-forwarded-for'];
      const first = (Array.isArray(forwarded) ? forwarded[0] : forwarded)?.split(',')[0]?.trim();
      if (first) return first;
    }
    return socket.handshake.address;
  }
}
