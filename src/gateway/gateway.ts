import type { Server, Socket } from 'socket.io';
import type { Cluster } from '../cluster/cluster.js';
import type { Inbox, InboxEntry } from '../inbox/inbox.js';
import type { Envelope } from '../notification/schema.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { Authenticator } from './auth.js';
import { UnauthorizedError, type TokenIdentity } from './jwt-auth.js';
import { readAcksDirectly } from './ack-reader.js';
import { supportsDirectWrite, writeEvent, writeEventWithAck, writeSocketIoPacketsDirectly } from './packet-writer.js';
import { PendingAcks, type PendingAck } from './pending-acks.js';
import { RateLimiter } from './rate-limiter.js';
import type {
  ClientToServerEvents,
  RegisterErrorCode,
  RegisterRequest,
  RegisterResponse,
  ServerToClientEvents,
  SocketData,
  TokenExpired,
} from './protocol.js';
import { TOKEN_EXPIRED_EVENT } from './protocol.js';

export type PushServer = Server<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData>;
type PushSocket = Socket<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData>;

/**
 * What happened when a message was offered to this node's sockets of one session.
 * - `delivered`: a socket acked (reliable) or took it (volatile)
 * - `not_delivered`: sockets were offered it, none acked in time (reliable)
 * - `behind`: every socket of the session is too far behind to be offered more
 * - `no_sockets`: the session has no socket on this node
 */
export type LocalOutcome = 'delivered' | 'not_delivered' | 'behind' | 'no_sockets';

export interface GatewayOptions {
  /** A socket with a reliable message un-acked for longer than this counts as behind. */
  ackHoldMs: number;
  /** Take the client address from X-Forwarded-For (only behind a proxy you control). */
  trustProxy: boolean;
  /** Connections per client address per 10 s (0: no limit). */
  connectsPer10s: number;
  /** `register` calls per client address per 10 s (0: no limit). */
  registersPer10s: number;
  ackTimeoutMs: number;
  maxPending: number;
  maxBuffered: number;
  maxIdLength: number;
  maxGroups: number;
}

/** Per socket, its un-acked reliable emits and when each was sent, oldest first. */
const pendingAcks = new WeakMap<PushSocket, PendingAcks>();
/** Sockets whose envelopes are written without socket.io's general `emit` (see packet-writer.ts). */
const directWrite = new WeakSet<PushSocket>();
/** Sockets that were refused a reliable message for being behind: it went to their inbox. */
const fellBehind = new WeakSet<PushSocket>();
/** The session whose inbox is being replayed to a socket now (one replay per socket at a time). */
const replaying = new WeakMap<PushSocket, string>();
/**
 * Sockets asked for a replay while theirs was running: a message stored after the running replay's last
 * read would otherwise wait for the next registration, so that replay reads once more before it ends.
 */
const replayAgain = new WeakSet<PushSocket>();
const GROUP_ROOM = 'g:';

/**
 * The socket.io side of a node: registers sessions and groups (SPEC §3), keeps this node's part of the
 * session directory, emits envelopes with or without acks, and replays a session's inbox after it
 * registers.
 */
export class Gateway {
  private readonly sessions = new Map<string, Set<PushSocket>>();
  private readonly connects: RateLimiter;
  private readonly registers: RateLimiter;

  constructor(
    private readonly io: PushServer,
    private readonly deps: {
      options: GatewayOptions;
      auth: Authenticator;
      cluster: Cluster;
      inbox: Inbox;
      metrics: Metrics;
      logger: Logger;
    },
  ) {
    this.connects = new RateLimiter(deps.options.connectsPer10s, 10_000);
    this.registers = new RateLimiter(deps.options.registersPer10s, 10_000);
    io.use((socket, next) => {
      if (!this.connects.take(this.address(socket))) {
        deps.metrics.socketRefusals.inc({ reason: 'connect_rate_limited' });
        next(new Error('rate_limited'));
        return;
      }
      next();
    });
    io.use((socket, next) => {
      deps.auth
        .authenticate(socket.handshake.auth)
        .then((identity) => {
          socket.data = { sessionId: undefined, groups: [], identity };
          next();
        })
        .catch((err: unknown) => {
          const reason = err instanceof UnauthorizedError ? err.reason : 'internal';
          deps.metrics.socketRefusals.inc({ reason: `auth_${reason}` });
          deps.logger.info({ reason, address: socket.handshake.address }, 'socket refused: unauthorized');
          // The client learns only that it is unauthorized; the reason stays in the logs and metrics.
          next(new Error('unauthorized'));
        });
    });
    io.on('connection', (socket) => this.onConnection(socket));
  }

  /** Sockets of the session on this node. */
  localSockets(sessionId: string): number {
    return this.sessions.get(sessionId)?.size ?? 0;
  }

  /**
   * Reliable: emits with an ack callback to every socket of the session that is not too far behind;
   * resolves `delivered` at the first ack. Volatile: emits to every socket that can take it now.
   */
  deliverToSession(sessionId: string, envelope: Envelope): Promise<LocalOutcome> {
    return new Promise((resolve) => this.offerToSession(sessionId, envelope, resolve));
  }

  /**
   * `deliverToSession` with a callback, called exactly once: at once when there is nothing to wait for
   * (volatile, no sockets, all behind), else at the first ack or when every socket's ack timed out.
   */
  offerToSession(sessionId: string, envelope: Envelope, done: (outcome: LocalOutcome) => void): void {
    const sockets = this.sessions.get(sessionId);
    if (!sockets || sockets.size === 0) {
      done('no_sockets');
      return;
    }
    const ready: PushSocket[] = [];
    for (const socket of sockets) if (this.canTake(socket, envelope.reliable)) ready.push(socket);
    if (ready.length < sockets.size) {
      // A slow socket: its reliable messages go to the inbox, volatile ones are dropped (both counted).
      this.deps.metrics.backpressureEvents.inc({ reason: 'slow_socket' }, sockets.size - ready.length);
    }
    if (ready.length === 0) {
      done('behind');
      return;
    }
    if (!envelope.reliable) {
      for (const socket of ready) {
        if (directWrite.has(socket)) writeEvent(socket as unknown as Socket, envelope.event, envelope);
        else socket.emit(envelope.event, envelope);
      }
      done('delivered');
      return;
    }
    let waiting = ready.length;
    let answered = false;
    for (const socket of ready) {
      this.emitWithAck(socket, envelope, (acked) => {
        waiting -= 1;
        if (answered) return;
        if (acked || waiting === 0) {
          answered = true;
          done(acked ? 'delivered' : 'not_delivered');
        }
      });
    }
  }

  /** Emits to the group's members on every node (through the socket.io adapter). */
  emitToGroup(group: string, envelope: Envelope): void {
    const room = this.io.to(GROUP_ROOM + group);
    (envelope.reliable ? room : room.volatile).emit(envelope.event, envelope);
  }

  /** Emits to every connected socket on every node. */
  broadcast(envelope: Envelope): void {
    (envelope.reliable ? this.io : this.io.volatile).emit(envelope.event, envelope);
  }

  /**
   * Offers the session's inbox to its sockets on this node, oldest first (used when a message was
   * stored while the session was registering).
   */
  replaySession(sessionId: string): void {
    for (const socket of this.sessions.get(sessionId) ?? []) void this.replay(socket, sessionId);
  }

  /** Closes every connection so the clients reconnect (to another node, behind a load balancer). */
  disconnectAll(): void {
    // Closing the transport (not a socket.io "disconnect" packet, after which clients give up) makes
    // socket.io-client reconnect by itself.
    for (const socket of this.io.of('/').sockets.values()) socket.conn.close();
  }

  private onConnection(socket: PushSocket): void {
    const { metrics, logger } = this.deps;
    metrics.connectedSockets.inc();
    // engine.io keeps the upgrade request (IncomingMessage and all it references) for the connection's
    // lifetime; nothing here needs it once the handshake (headers, address, auth) is built. Released,
    // as socket.io's memory-usage guide suggests: less memory per connection, and less for each full
    // garbage collection of a busy node to mark.
    (socket.conn as unknown as { request: unknown }).request = null;
    pendingAcks.set(socket, new PendingAcks());
    const plain = socket as unknown as Socket;
    if (supportsDirectWrite(plain)) {
      directWrite.add(socket);
      // Group and broadcast emits, which socket.io writes itself, as single frames too.
      writeSocketIoPacketsDirectly(plain);
      // A client that starts on long-polling gets the reader once it has upgraded to a websocket.
      if (!readAcksDirectly(plain)) socket.conn.once('upgrade', () => readAcksDirectly(plain));
    }
    const identity = socket.data.identity as TokenIdentity | undefined;
    let expiry: NodeJS.Timeout | undefined;
    if (identity) {
      void this.register(socket, { sessionId: identity.sessionId, groups: identity.groups });
      if (identity.expiresAt !== undefined) {
        // setTimeout holds at most ~24.8 days; a later expiry is checked again then.
        const expire = () => {
          const left = identity.expiresAt! - Date.now();
          if (left > 0) {
            expiry = setTimeout(expire, Math.min(left, 2 ** 31 - 1));
            return;
          }
          const info: TokenExpired = { code: 'token_expired', message: 'your token expired; connect again with a new one' };
          (socket as unknown as Socket).emit(TOKEN_EXPIRED_EVENT, info);
          metrics.socketRefusals.inc({ reason: 'token_expired' });
          socket.disconnect(true);
        };
        expire();
      }
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
      void this.register(socket, request).then(answer);
    });
    socket.on('disconnect', (reason) => {
      clearTimeout(expiry);
      metrics.connectedSockets.dec();
      metrics.socketDisconnects.inc({ reason: reason.replace(/ /g, '_') });
      for (const pending of pendingAcks.get(socket)?.drain() ?? []) pending.settle(false);
      const sessionId = socket.data.sessionId;
      if (sessionId !== undefined) void this.leaveSession(socket, sessionId);
      logger.debug({ socket: socket.id, session: sessionId, reason }, 'socket disconnected');
    });
  }

  private async register(socket: PushSocket, request: unknown): Promise<RegisterResponse> {
    const parsed = this.parseRegister(request, socket.data.identity?.sessionId);
    if (!parsed.ok) return parsed;
    const { sessionId, groups } = parsed;
    const identity = socket.data.identity;
    if (identity) {
      if (sessionId !== identity.sessionId) {
        return refuse('forbidden', 'sessionId must be the session of your token');
      }
      const outside = groups.filter((group) => !identity.groups.includes(group));
      if (outside.length > 0) return refuse('forbidden', `your token does not allow groups: ${outside.join(', ')}`);
    }

    const previous = socket.data.sessionId;
    for (const group of socket.data.groups) if (!groups.includes(group)) socket.leave(GROUP_ROOM + group);
    for (const group of groups) socket.join(GROUP_ROOM + group);
    socket.data.groups = groups;
    if (previous !== sessionId) {
      if (previous !== undefined) await this.leaveSession(socket, previous);
      socket.data.sessionId = sessionId;
      let sockets = this.sessions.get(sessionId);
      if (!sockets) {
        sockets = new Set();
        this.sessions.set(sessionId, sockets);
        this.deps.metrics.sessions.set(this.sessions.size);
      }
      sockets.add(socket);
      try {
        await this.deps.cluster.setLocalSockets(sessionId, sockets.size);
      } catch (err) {
        this.deps.logger.warn({ err, session: sessionId }, 'session directory update failed');
        return refuse('unavailable', 'the session directory is unavailable; register again shortly');
      }
    }
    this.deps.logger.debug({ socket: socket.id, session: sessionId, groups }, 'socket registered');
    // After the ack has gone out, so the client has its handlers in place when the inbox arrives.
    setImmediate(() => void this.replay(socket, sessionId));
    return { ok: true, sessionId, groups };
  }

  private async leaveSession(socket: PushSocket, sessionId: string): Promise<void> {
    const sockets = this.sessions.get(sessionId);
    if (!sockets?.delete(socket)) return;
    if (sockets.size === 0) {
      this.sessions.delete(sessionId);
      this.deps.metrics.sessions.set(this.sessions.size);
    }
    try {
      await this.deps.cluster.setLocalSockets(sessionId, sockets.size);
    } catch (err) {
      this.deps.logger.warn({ err, session: sessionId }, 'session directory update failed');
    }
  }

  private parseRegister(
    request: unknown,
    defaultSession: string | undefined,
  ): ({ ok: true } & { sessionId: string; groups: string[] }) | RegisterResponse & { ok: false } {
    if (request === undefined || request === null) request = {};
    if (typeof request !== 'object' || Array.isArray(request)) {
      return refuse('invalid_request', 'register takes an object { sessionId, groups }');
    }
    const { sessionId, socketId, groups, groupFlag } = request as RegisterRequest;
    const { maxIdLength, maxGroups } = this.deps.options;
    const session = sessionId ?? socketId ?? defaultSession;
    if (typeof session !== 'string' || session.length === 0 || session.length > maxIdLength) {
      return refuse('invalid_request', `sessionId must be a string of 1 to ${maxIdLength} characters`);
    }
    const rawGroups = groups ?? groupFlag ?? [];
    const list = typeof rawGroups === 'string' ? [rawGroups] : rawGroups;
    if (
      !Array.isArray(list) ||
      list.length > maxGroups ||
      !list.every((group) => typeof group === 'string' && group.length > 0 && group.length <= maxIdLength)
    ) {
      return refuse(
        'invalid_request',
        `groups must be a string or an array of at most ${maxGroups} strings of 1 to ${maxIdLength} characters`,
      );
    }
    return { ok: true, sessionId: session, groups: [...new Set(list)] };
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

  /** A socket takes no more when its write buffer is full or, for reliable messages, too many are un-acked. */
  private canTake(socket: PushSocket, reliable: boolean): boolean {
    if (!socket.connected) return false;
    const takes = this.keepsUp(socket, reliable);
    // Its reliable message goes to the inbox; once the socket has caught up, the inbox is offered to it.
    if (!takes && reliable) fellBehind.add(socket);
    return takes;
  }

  private keepsUp(socket: PushSocket, reliable: boolean): boolean {
    const conn = socket.conn as unknown as { writeBuffer: unknown[] };
    if (conn.writeBuffer.length >= this.deps.options.maxBuffered) return false;
    if (!reliable) return true;
    const pending = pendingAcks.get(socket);
    const oldest = pending?.oldestSentAt;
    if (!pending || oldest === undefined) return true;
    if (pending.size >= this.deps.options.maxPending) return false;
    // A socket that has left a message un-acked for longer than the hold time is not keeping up (or
    // not acking at all): new messages go to its inbox instead of waiting on it.
    return Date.now() - oldest < this.deps.options.ackHoldMs;
  }

  private emitWithAck(socket: PushSocket, envelope: Envelope, done: (acked: boolean) => void): void {
    const pending = pendingAcks.get(socket);
    let settled = false;
    let entry: PendingAck | undefined;
    const settle = (acked: boolean): void => {
      if (settled) return;
      settled = true;
      if (entry) pending?.remove(entry);
      done(acked);
      // Caught up (everything acked, none left waiting): what went to its inbox meanwhile follows now.
      // A socket that does not ack at all never gets here, so it is not offered its inbox again and again.
      const sessionId = socket.data.sessionId;
      if (acked && pending?.size === 0 && sessionId !== undefined && fellBehind.delete(socket)) {
        void this.replay(socket, sessionId);
      }
    };
    entry = pending?.add(settle, Date.now());
    const { ackTimeoutMs } = this.deps.options;
    if (directWrite.has(socket)) {
      writeEventWithAck(socket as unknown as Socket, envelope.event, envelope, ackTimeoutMs, settle);
      return;
    }
    const withAck = socket.timeout(ackTimeoutMs) as unknown as {
      emit(event: string, envelope: Envelope, ack: (err: Error | null) => void): void;
    };
    withAck.emit(envelope.event, envelope, (err) => settle(!err));
  }

  /**
   * Offers the inbox to one socket, a window of `maxPending` at a time, removing each entry when it is
   * acked. Stops at the first entry that is not acked (it stays for the next registration) or when the
   * socket leaves the session; reads again until the inbox is empty, so messages stored meanwhile follow.
   */
  private async replay(socket: PushSocket, sessionId: string): Promise<void> {
    const { inbox, metrics, logger, options } = this.deps;
    const current = () => socket.connected && socket.data.sessionId === sessionId;
    // The replay running for this socket and session reads the inbox again until it is empty.
    if (replaying.get(socket) === sessionId) {
      replayAgain.add(socket);
      return;
    }
    replaying.set(socket, sessionId);
    try {
      while (current()) {
        replayAgain.delete(socket);
        const entries = await inbox.read(sessionId, options.maxPending);
        if (!current()) return;
        if (entries.length === 0) {
          if (replayAgain.has(socket)) continue;
          return;
        }
        const acks = await Promise.all(entries.map((entry) => this.offer(socket, entry)));
        const acked = entries.filter((_, i) => acks[i]);
        await Promise.all(acked.map((entry) => inbox.remove(sessionId, entry.id)));
        if (acked.length > 0) metrics.inbox.inc({ op: 'replayed' }, acked.length);
        if (acked.length < entries.length) return;
      }
    } catch (err) {
      logger.warn({ err, session: sessionId }, 'inbox replay failed; the messages stay in the inbox');
    } finally {
      if (replaying.get(socket) === sessionId) replaying.delete(socket);
    }
  }

  private offer(socket: PushSocket, entry: InboxEntry): Promise<boolean> {
    const { expiresAt: _expiresAt, ...envelope } = entry;
    return new Promise((resolve) => this.emitWithAck(socket, envelope, resolve));
  }
}

function refuse(code: RegisterErrorCode, message: string): RegisterResponse & { ok: false } {
  return { ok: false, error: { code, message } };
}
