import { io, type ManagerOptions, type Socket, type SocketOptions } from 'socket.io-client';
import {
  TOKEN_EXPIRED_EVENT,
  type ClientToServerEvents,
  type Missed,
  type RegisterErrorCode,
  type RegisterRequest,
  type RegisterResponse,
  type ServerToClientEvents,
  type TokenExpired,
} from '../gateway/protocol.js';
import type { Envelope } from '../notification/schema.js';
import { TypedEmitter, type Listenable } from './emitter.js';
import { RecentIds } from './recent-ids.js';
import { tokenGroups } from './token.js';

/** A handshake JWT, or a function returning one: called before every (re)connect, so it can refresh. */
export type TokenSource = string | (() => string | Promise<string>);

export interface PushCenterClientOptions {
  /** The push-center node, or the load balancer in front of the nodes, e.g. `https://push.example.com`. */
  url: string;
  /** The session to register. With auth it may be left out: the server takes it from the token's `sub`. */
  sessionId?: string;
  /** Groups to join. Default: with a token, every group its `groups` claim allows; without, none. */
  groups?: string[];
  /** The JWT sent in the handshake (`auth: { token }`), when the server has auth enabled. */
  token?: TokenSource;
  /** Default `['websocket', 'polling']`: WebSocket, with HTTP long-polling when it cannot open. */
  transports?: Array<'websocket' | 'polling'>;
  /** How many recently handled message ids are remembered to drop redeliveries. Default 1000. */
  dedupeWindow?: number;
  /** Passed to socket.io-client as they are, over the SDK's own settings (e.g. `reconnectionDelay`). */
  socketOptions?: Partial<ManagerOptions & SocketOptions>;
  /** Connect from the constructor; failures are reported as `error` events only. Default false. */
  autoConnect?: boolean;
}

/** What the server registered: the answer of the `register` event (PROTOCOL §3). */
export interface Registration {
  sessionId: string;
  groups: string[];
  /** The gap notice, when messages were given up on while the session was away (PROTOCOL §4.1); see the `gap` event. */
  missed?: Missed;
}

/** An envelope whose `data` the application declares the type of (not checked at runtime). */
export type Message<T = unknown> = Omit<Envelope, 'data'> & { data: T };

/**
 * Handles one message. Returning (or resolving) means the application has it: a reliable message is
 * acked only then. Throwing (or rejecting) leaves it un-acked, so the server redelivers it later.
 */
export type MessageHandler<T = unknown> = (message: Message<T>) => void | Promise<void>;

export type PushCenterErrorCode =
  /** The server refused a registration (PROTOCOL §3). `unavailable` and `rate_limited` are retried by the client. */
  | RegisterErrorCode
  /** The handshake was refused: missing, bad or expired token. The client stays disconnected. */
  | 'unauthorized'
  /** The handshake was refused for another reason. The client stays disconnected. */
  | 'refused'
  /** The server could not be reached; socket.io-client keeps trying unless its attempts ran out. */
  | 'connect_failed'
  /** The token function threw or gave no token; the client tries again after a delay. */
  | 'token_unavailable'
  /** The server did not answer a registration in time; retried while connected. */
  | 'register_timeout'
  /** The server ended the connection (and not for an expired token the client can renew). */
  | 'disconnected'
  /** A message handler threw or rejected; the message was not acked. */
  | 'handler_failed'
  /** A message arrived under an event without handlers; it was not acked. */
  | 'no_handler'
  /** Something arrived that is not an envelope; ignored. */
  | 'invalid_message'
  /** `close()` was called while waiting. */
  | 'closed';

export class PushCenterError extends Error {
  constructor(
    readonly code: PushCenterErrorCode,
    message: string,
    options: { cause?: unknown; envelope?: Envelope } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = 'PushCenterError';
    this.envelope = options.envelope;
  }

  /** The message concerned, for `handler_failed`, `no_handler`. */
  readonly envelope: Envelope | undefined;
}

/** The client's lifecycle, separate from messages so no notification event name can collide with it. */
export interface LifecycleEvents {
  /** The server accepted a registration: after every (re)connect and every `setGroups`. */
  registered: (registration: Registration) => void;
  /**
   * Right after `registered` when the server gave up on messages for this session since it last
   * registered (PROTOCOL §4.1): `count` messages, the earliest sent at `since` (ms since epoch), were
   * dead-lettered (inbox full, or their `ttl` ran out in it) and will not come. Re-sync: fetch what changed
   * since `since` from your own backend.
   */
  gap: (missed: Missed) => void;
  /** The connection ended; socket.io's reason, e.g. `transport close`, `io server disconnect`. */
  disconnected: (reason: string) => void;
  /** A new connection attempt starts (1, 2, … since the last registration). */
  reconnecting: (attempt: number) => void;
  /** Something failed; `error.code` says what. Without listeners, errors are logged with `console.warn`. */
  error: (error: PushCenterError) => void;
  /** The server is about to disconnect because the token ran out. With a token function the client reconnects. */
  token_expired: (info: TokenExpired) => void;
}

type PushSocket = Socket<ServerToClientEvents, ClientToServerEvents>;

const DEFAULT_TRANSPORTS: Array<'websocket' | 'polling'> = ['websocket', 'polling'];
const DEFAULT_DEDUPE_WINDOW = 1000;
const DEFAULT_EVENT = 'message';
const REGISTER_TIMEOUT_MS = 10_000;
/** Errors about one message: they do not concern whoever waits for a registration. */
const MESSAGE_ERRORS: ReadonlySet<PushCenterErrorCode> = new Set<PushCenterErrorCode>(['handler_failed', 'no_handler', 'invalid_message']);
const RETRYABLE_REFUSALS: ReadonlySet<string> = new Set<RegisterErrorCode>(['unavailable', 'rate_limited']);

/**
 * The push-center client for browsers and Node (PROTOCOL §3): connects with socket.io, registers its session
 * and groups after every (re)connect, hands messages to handlers per event name, acks reliable ones once
 * handled and drops redeliveries.
 *
 * Guarantees:
 * - A reliable message is acked only after every handler of its event returned or resolved. If one
 *   throws or rejects, or none is registered, it is not acked: the server keeps it in the session's inbox
 *   and delivers it again after the next registration (at-least-once). The same holds when handling
 *   takes longer than the server's `ACK_TIMEOUT_MS`.
 * - A message whose id was handled among the last `dedupeWindow` ones is not handed over again, but
 *   acked again, so the server stops redelivering it. Handlers may run concurrently for different ids.
 * - What the server gave up on while the session was away (its inbox was full, or a message's `ttl` ran
 *   out in it) is not lost without a word: the next registration reports it as a `gap` event, and the
 *   application fetches what it missed from its own backend.
 */
export class PushCenterClient {
  /** Lifecycle events: `registered`, `gap`, `disconnected`, `reconnecting`, `error`, `token_expired`. */
  readonly lifecycle: Listenable<LifecycleEvents>;

  private readonly emitter = new TypedEmitter<LifecycleEvents>();
  private readonly socket: PushSocket;
  private readonly handlers = new Map<string, Set<MessageHandler<any>>>();
  private readonly recent: RecentIds;
  /** Messages being handled, by id: a copy arriving meanwhile waits for the first one's outcome. */
  private readonly handling = new Map<string, Promise<boolean>>();
  private readonly waiters: Array<{ resolve: (r: Registration) => void; reject: (e: PushCenterError) => void }> = [];
  private readonly sessionId: string | undefined;
  private groups: string[] | undefined;
  private token: string | undefined;
  private current: Registration | undefined;
  /** Bumped on every connect and disconnect: an ack or answer of an older connection is stale. */
  private connection = 0;
  private registerSeq = 0;
  private authSeq = 0;
  /** Connection attempts the client made itself (token retries, renewals) since the last registration. */
  private attempts = 0;
  private tokenExpired = false;
  private closed = true;
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(private readonly options: PushCenterClientOptions) {
    this.lifecycle = this.emitter;
    this.sessionId = options.sessionId;
    this.groups = options.groups && [...options.groups];
    if (typeof options.token === 'string') this.token = options.token;
    this.recent = new RecentIds(options.dedupeWindow ?? DEFAULT_DEDUPE_WINDOW);
    this.socket = io(options.url, {
      transports: options.transports ?? DEFAULT_TRANSPORTS,
      // Without it socket.io-client never falls back from the first transport to the next.
      tryAllTransports: true,
      // Each client owns its connection: close() ends it, whatever other clients of the same URL do.
      forceNew: true,
      ...options.socketOptions,
      autoConnect: false,
      ...(options.token === undefined ? {} : { auth: (send: (data: object) => void) => this.authenticate(send) }),
    });
    this.socket.on('connect', () => this.onConnect());
    this.socket.on('connect_error', (err) => this.onConnectError(err));
    this.socket.on('disconnect', (reason) => this.onDisconnect(reason));
    this.socket.io.on('reconnect_attempt', (attempt) => this.emitter.emit('reconnecting', attempt));
    this.socket.io.on('reconnect_failed', () =>
      this.fail(new PushCenterError('connect_failed', `gave up reaching ${options.url}: reconnection attempts ran out`)),
    );
    this.socket.onAny((event: string, ...args: unknown[]) => this.onEvent(event, args));
    if (options.autoConnect) this.connect().catch(() => undefined);
  }

  /** What the server registered, while connected; undefined otherwise. */
  get registration(): Registration | undefined {
    return this.current;
  }

  /**
   * Connects and registers. Resolves with the server's answer to the first registration; rejects with a
   * `PushCenterError` when that attempt fails (handshake refused, server unreachable, registration
   * refused). Whatever happens later is reported through `lifecycle`, and the client keeps reconnecting
   * and registering by itself until `close()`.
   */
  connect(): Promise<Registration> {
    if (this.current) return Promise.resolve(this.current);
    const outcome = this.nextOutcome();
    this.closed = false;
    if (!this.socket.active) {
      clearTimeout(this.timer);
      this.socket.connect();
    }
    return outcome;
  }

  /**
   * Replaces the groups and registers again. Resolves with the server's answer; rejects when it refuses.
   * When the client is not connecting, the groups are kept for `connect()` and the promise resolves
   * undefined.
   */
  setGroups(groups: string[]): Promise<Registration | undefined> {
    this.groups = [...groups];
    if (this.closed || !this.socket.active) return Promise.resolve(undefined);
    const outcome = this.nextOutcome();
    if (this.socket.connected) this.register();
    return outcome;
  }

  /** Handles messages of the `message` event. */
  on<T = unknown>(handler: MessageHandler<T>): this;
  /** Handles messages of one event (the notification's `event`). Several handlers per event may be added. */
  on<T = unknown>(event: string, handler: MessageHandler<T>): this;
  on<T>(eventOrHandler: string | MessageHandler<T>, maybeHandler?: MessageHandler<T>): this {
    const [event, handler] = eventAndHandler(eventOrHandler, maybeHandler);
    let set = this.handlers.get(event);
    if (!set) {
      set = new Set();
      this.handlers.set(event, set);
    }
    set.add(handler);
    return this;
  }

  off<T = unknown>(handler: MessageHandler<T>): this;
  off<T = unknown>(event: string, handler: MessageHandler<T>): this;
  off<T>(eventOrHandler: string | MessageHandler<T>, maybeHandler?: MessageHandler<T>): this {
    const [event, handler] = eventAndHandler(eventOrHandler, maybeHandler);
    this.handlers.get(event)?.delete(handler);
    return this;
  }

  /** Disconnects and stops reconnecting; pending `connect()`/`setGroups()` promises reject with `closed`. */
  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.socket.disconnect();
    this.settle(new PushCenterError('closed', 'the client was closed'));
  }

  /** socket.io's `auth` callback: runs before every connection attempt, so a token function can refresh. */
  private authenticate(send: (data: object) => void): void {
    const seq = ++this.authSeq;
    const source = this.options.token;
    Promise.resolve()
      .then(() => (typeof source === 'function' ? source() : source))
      .then((token) => {
        if (typeof token !== 'string' || token.length === 0) throw new TypeError(`it gave ${typeof token}, not a JWT`);
        if (seq !== this.authSeq || this.closed) return;
        this.token = token;
        send({ token });
      })
      .catch((err: unknown) => {
        if (seq !== this.authSeq || this.closed) return;
        // Abandon this attempt (socket.io would wait for the token forever) and start another later.
        this.socket.disconnect();
        this.fail(new PushCenterError('token_unavailable', `the token function failed: ${describe(err)}`, { cause: err }));
        this.retryLater(() => this.reconnect());
      });
  }

  private onConnect(): void {
    this.connection += 1;
    this.tokenExpired = false;
    this.register();
  }

  private register(): void {
    clearTimeout(this.timer);
    const seq = ++this.registerSeq;
    const request: RegisterRequest = { groups: this.groups ?? tokenGroups(this.token) ?? [] };
    if (this.sessionId !== undefined) request.sessionId = this.sessionId;
    this.socket
      .timeout(REGISTER_TIMEOUT_MS)
      .emitWithAck('register', request)
      .then(
        (response: RegisterResponse) => {
          if (seq !== this.registerSeq) return;
          if (response.ok) {
            this.attempts = 0;
            const { sessionId, groups, missed } = response;
            const gap = isMissed(missed) ? { count: missed.count, since: missed.since } : undefined;
            this.current = gap ? { sessionId, groups, missed: gap } : { sessionId, groups };
            this.settle(this.current);
            this.emitter.emit('registered', this.current);
            if (gap) this.emitter.emit('gap', { ...gap });
            return;
          }
          const { code, message } = response.error;
          this.fail(new PushCenterError(code, `registration refused (${code}): ${message}`));
          if (RETRYABLE_REFUSALS.has(code)) this.retryLater(() => this.register());
        },
        (err: unknown) => {
          // After a disconnect the answer is moot: the next connect registers again.
          if (seq !== this.registerSeq || !this.socket.connected) return;
          this.fail(new PushCenterError('register_timeout', `no answer to register within ${REGISTER_TIMEOUT_MS} ms`, { cause: err }));
          this.retryLater(() => this.register());
        },
      );
  }

  private onConnectError(err: Error): void {
    if (this.socket.active) {
      this.fail(new PushCenterError('connect_failed', `cannot reach ${this.options.url} (${err.message}); retrying`, { cause: err }));
      return;
    }
    // A refusal by the server (its middleware): socket.io-client does not retry those.
    const code = err.message === 'unauthorized' ? 'unauthorized' : 'refused';
    this.fail(new PushCenterError(code, `the server refused the connection: ${err.message}`, { cause: err }));
  }

  private onDisconnect(reason: string): void {
    this.connection += 1;
    this.registerSeq += 1;
    this.current = undefined;
    clearTimeout(this.timer);
    this.emitter.emit('disconnected', reason);
    if (this.closed || this.socket.active) return;
    // The server ended the session on purpose; socket.io-client does not come back by itself.
    if (this.tokenExpired && typeof this.options.token === 'function') {
      this.tokenExpired = false;
      this.attempts += 1;
      // On a fresh task: socket.io-client is still inside its own disconnect handling.
      this.timer = setTimeout(() => this.reconnect(), 0);
      return;
    }
    const why = this.tokenExpired ? 'the token expired and no token function is configured' : 'the server disconnected';
    this.settle(new PushCenterError('disconnected', `${why}; call connect() to come back`));
  }

  /** A connection attempt the client starts itself (socket.io-client's own ones emit `reconnect_attempt`). */
  private reconnect(): void {
    if (this.closed || this.socket.active) return;
    this.emitter.emit('reconnecting', this.attempts);
    this.socket.connect();
  }

  private onEvent(event: string, args: unknown[]): void {
    const [payload, ack] = args;
    const callback = typeof ack === 'function' ? (ack as () => void) : undefined;
    if (event === TOKEN_EXPIRED_EVENT && isTokenExpired(payload) && !callback) {
      this.tokenExpired = true;
      this.emitter.emit('token_expired', payload);
      return;
    }
    if (!isEnvelope(payload)) {
      this.fail(new PushCenterError('invalid_message', `ignored an event "${event}" that carries no envelope`));
      return;
    }
    void this.receive(event, payload, callback);
  }

  private async receive(event: string, envelope: Envelope, ack: (() => void) | undefined): Promise<void> {
    const connection = this.connection;
    // An ack belongs to the connection the message came on; the server forgets it on a disconnect.
    const acknowledge = () => {
      if (ack && connection === this.connection) ack();
    };
    if (this.recent.has(envelope.id)) return acknowledge();
    const earlier = this.handling.get(envelope.id);
    if (earlier) {
      if (await earlier) acknowledge();
      return;
    }
    const handlers = [...(this.handlers.get(event) ?? [])];
    if (handlers.length === 0) {
      const fate = ack ? 'not acked, so it is delivered again later' : 'dropped';
      const message = `message ${envelope.id} arrived under "${event}", which has no handler; ${fate}`;
      this.fail(new PushCenterError('no_handler', message, { envelope }));
      return;
    }
    const outcome = this.handle(envelope, handlers);
    this.handling.set(envelope.id, outcome);
    const handled = await outcome;
    this.handling.delete(envelope.id);
    if (!handled) return;
    this.recent.add(envelope.id);
    acknowledge();
  }

  /** Runs every handler; true when none failed. */
  private async handle(envelope: Envelope, handlers: Array<MessageHandler<any>>): Promise<boolean> {
    const results = await Promise.allSettled(handlers.map(async (handler) => handler(envelope)));
    const failures = results.filter((result): result is PromiseRejectedResult => result.status === 'rejected');
    for (const failure of failures) {
      const message = `the handler of message ${envelope.id} ("${envelope.event}") failed: ${describe(failure.reason)}; not acked`;
      this.fail(new PushCenterError('handler_failed', message, { cause: failure.reason, envelope }));
    }
    return failures.length === 0;
  }

  /** The next registration answer, or the next failure on the way to it. */
  private nextOutcome(): Promise<Registration> {
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  private settle(outcome: Registration | PushCenterError): void {
    for (const waiter of this.waiters.splice(0)) {
      if (outcome instanceof PushCenterError) waiter.reject(outcome);
      else waiter.resolve(outcome);
    }
  }

  /** Reports an error to `lifecycle` and to whoever waits for a registration. */
  private fail(error: PushCenterError): void {
    if (!MESSAGE_ERRORS.has(error.code)) this.settle(error);
    if (!this.emitter.emit('error', error)) console.warn(`[push-center] ${error.message}`);
  }

  /** Runs `action` after an exponential delay with jitter, within socket.io's reconnection delays; counts an attempt. */
  private retryLater(action: () => void): void {
    const base = this.options.socketOptions?.reconnectionDelay ?? 1000;
    const max = this.options.socketOptions?.reconnectionDelayMax ?? 5000;
    const delay = Math.min(base * 2 ** this.attempts, max) * (0.5 + Math.random() / 2);
    this.attempts += 1;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      if (!this.closed) action();
    }, delay);
  }
}

function eventAndHandler<T>(
  eventOrHandler: string | MessageHandler<T>,
  maybeHandler: MessageHandler<T> | undefined,
): [string, MessageHandler<T>] {
  if (typeof eventOrHandler === 'function') return [DEFAULT_EVENT, eventOrHandler];
  if (typeof maybeHandler !== 'function') throw new TypeError(`on/off("${eventOrHandler}"): the handler must be a function`);
  return [eventOrHandler, maybeHandler];
}

function isEnvelope(value: unknown): value is Envelope {
  const candidate = value as Partial<Envelope> | null;
  return typeof candidate === 'object' && candidate !== null && typeof candidate.id === 'string' && typeof candidate.event === 'string';
}

/** A gap notice worth reporting: a positive count and a time. */
function isMissed(value: unknown): value is Missed {
  const candidate = value as Partial<Missed> | null | undefined;
  return typeof candidate?.count === 'number' && candidate.count > 0 && Number.isFinite(candidate.since);
}

function isTokenExpired(value: unknown): value is TokenExpired {
  return typeof value === 'object' && value !== null && (value as Partial<TokenExpired>).code === 'token_expired';
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
