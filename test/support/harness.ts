import { io as connectSocket, type Socket } from 'socket.io-client';
import { App, type AppOverrides } from '../../src/app.js';
import { loadConfig } from '../../src/config/config.js';
import type { RegisterResponse } from '../../src/gateway/protocol.js';
import type { Envelope } from '../../src/notification/schema.js';
import { createLogger } from '../../src/observability/logger.js';

export type Client = Socket;

/** A running node on a free port, with the settings a test asks for over the defaults. */
export interface Running {
  app: App;
  url: string;
  close(): Promise<void>;
}

const clients = new Set<Client>();

/** `beforeStart` may add routes of its own to `app.http`: after `start()` fastify takes no more. */
export async function startNode(
  env: Record<string, string | number> = {},
  overrides: AppOverrides = {},
  beforeStart?: (app: App) => void,
): Promise<Running> {
  const config = loadConfig({ PORT: 0, HOST: '127.0.0.1', LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent', ...env });
  const app = await App.create(config, { logger: createLogger(config.logLevel, config.nodeId, false), ...overrides });
  beforeStart?.(app);
  const address = await app.start();
  return { app, url: `http://127.0.0.1:${address.port}`, close: () => app.close() };
}

/** A socket.io-client over websocket, connected; closed by `closeClients()`. */
export async function connectClient(url: string, options: { auth?: Record<string, unknown> } = {}): Promise<Client> {
  const socket = connectSocket(url, { transports: ['websocket'], reconnection: false, forceNew: true, ...options });
  clients.add(socket);
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('connect_error', (err) => reject(err));
  });
  return socket;
}

export function closeClients(): void {
  for (const socket of clients) socket.close();
  clients.clear();
}

export function register(socket: Client, request: unknown): Promise<RegisterResponse> {
  return socket.timeout(5000).emitWithAck('register', request) as Promise<RegisterResponse>;
}

/** Connects and registers in one step. */
export async function session(url: string, sessionId: string, groups: string[] = []): Promise<Client> {
  const socket = await connectClient(url);
  const response = await register(socket, { sessionId, groups });
  if (!response.ok) throw new Error(`register failed: ${response.error.message}`);
  return socket;
}

export interface Received {
  envelope: Envelope;
  /** The ack callback a reliable session message came with. */
  ack: (() => void) | undefined;
}

/**
 * Records every envelope a socket gets under `event`; acks reliable ones at once unless told not to.
 */
export function collect(socket: Client, event = 'message', options: { ack?: boolean } = {}): Received[] {
  const received: Received[] = [];
  socket.on(event, (envelope: Envelope, ack?: () => void) => {
    received.push({ envelope, ack });
    if (options.ack !== false && typeof ack === 'function') ack();
  });
  return received;
}

/** Polls until the condition holds, or fails with what was last seen. */
export async function until<T>(probe: () => T | Promise<T>, done: (value: T) => boolean, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let value = await probe();
  while (!done(value)) {
    if (Date.now() > deadline) throw new Error(`timed out; last value: ${JSON.stringify(value)}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
    value = await probe();
  }
  return value;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export async function post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: any; headers: Headers }> {
  const response = await fetch(`${url}/v1/notifications`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: response.status, body: await response.json(), headers: response.headers };
}

export async function getJson(url: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: any }> {
  const response = await fetch(`${url}${path}`, { headers });
  return { status: response.status, body: await response.json() };
}

/** The value of one sample of `/metrics`, 0 when absent. */
export async function metric(url: string, name: string, labels: Record<string, string> = {}): Promise<number> {
  return sample(await (await fetch(`${url}/metrics`)).text(), name, labels);
}

/** The same, read off the node's registry: no request (none counted against a rate limit, no token needed). */
export async function nodeMetric(node: Running, name: string, labels: Record<string, string> = {}): Promise<number> {
  return sample(await node.app.metrics.registry.metrics(), name, labels);
}

function sample(text: string, name: string, labels: Record<string, string>): number {
  const wanted = Object.entries(labels);
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const match = /^([^{\s]+)(?:\{([^}]*)\})?\s+(\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const found = Object.fromEntries(
      [...(match[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]),
    );
    if (wanted.every(([key, value]) => found[key] === value)) return Number(match[3]);
  }
  return 0;
}
