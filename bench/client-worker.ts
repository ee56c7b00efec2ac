import { io } from 'socket.io-client';
import { Histogram } from './lib/histogram.js';
import { HEARTBEAT_TIMEOUT_MS, STATS_INTERVAL_MS, type ClientKind, type WorkerCommand, type WorkerReport } from './lib/ipc.js';
import { LeanSocket } from './lib/lean-socket.js';
import type { BenchData } from './lib/payload.js';

/**
 * One process of simulated browser sessions. Connects its share of the clients over websocket (with
 * the lean socket.io client of `lib/lean-socket.ts`, or with socket.io-client itself) in bounded
 * batches, registers each (`register` with an ack), and then counts every envelope by message
 * (per client, so duplicates show), acks reliable ones at once, and measures publish → receive latency
 * from `data.t`. Reports to the parent every 100 ms. A traced session (the noisy scenario's flooded one)
 * is not counted with the others: each of its arrivals, sequence number and time, goes to the parent.
 * Exits on `stop`, when the parent goes away, or when the parent's heartbeats stop.
 */

interface Envelope {
  id: string;
  data: BenchData;
}

/** What the worker needs of a client socket, whichever library speaks the protocol. */
interface BenchSocket {
  onMessage(handler: (envelope: Envelope, ack?: () => void) => void): void;
  onDisconnect(handler: () => void): void;
  emitWithAck(event: string, payload: unknown, timeoutMs: number): Promise<unknown>;
  close(): void;
}

interface Client {
  socket: BenchSocket;
  sessionId: string;
  seen: Set<number>;
  /** Traced: arrivals not yet reported, flat [seq, received at, ...]. */
  arrivals: number[] | undefined;
}

const clients: Client[] = [];
const latency = new Histogram();
let received = 0;
let unique = 0;
let acked = 0;
let disconnects = 0;
let maxSinceReport = 0;
let stopping = false;
let groups: string[] = [];
let lastHeartbeat = Date.now();

function send(report: WorkerReport): void {
  if (process.connected) process.send?.(report);
}

function attach(client: Client): void {
  client.socket.onMessage((envelope, ack) => {
    if (client.arrivals) {
      client.arrivals.push(envelope.data.s, Date.now());
      if (typeof ack === 'function') ack();
      return;
    }
    const ms = Date.now() - envelope.data.t;
    received += 1;
    if (!client.seen.has(envelope.data.s)) {
      client.seen.add(envelope.data.s);
      unique += 1;
    }
    latency.record(ms);
    if (ms > maxSinceReport) maxSinceReport = ms;
    if (typeof ack === 'function') {
      ack();
      acked += 1;
    }
  });
  client.socket.onDisconnect(() => {
    if (!stopping) disconnects += 1;
  });
}

function register(socket: BenchSocket, sessionId: string, timeoutMs: number): Promise<void> {
  return (socket.emitWithAck('register', { sessionId, groups }, timeoutMs) as Promise<{ ok: boolean; error?: { message: string } }>)
    .then((answer) => {
      if (!answer.ok) throw new Error(`register refused: ${answer.error?.message ?? 'no reason'}`);
    });
}

function openLean(url: string, timeoutMs: number): Promise<BenchSocket> {
  return LeanSocket.connect(url, { timeoutMs }).then((socket) => ({
    onMessage: (handler) => socket.on('message', handler as (payload: unknown, ack?: () => void) => void),
    onDisconnect: (handler) => socket.onDisconnect(handler),
    emitWithAck: (event, payload, ms) => socket.emitWithAck(event, payload, ms),
    close: () => socket.close(),
  }));
}

function openSocketIo(url: string, timeoutMs: number): Promise<BenchSocket> {
  const socket = io(url, { transports: ['websocket'], reconnection: false, forceNew: true, timeout: timeoutMs });
  return new Promise<BenchSocket>((resolve, reject) => {
    socket.once('connect', () => resolve({
      onMessage: (handler) => socket.on('message', handler),
      onDisconnect: (handler) => socket.on('disconnect', handler),
      emitWithAck: (event, payload, ms) => socket.timeout(ms).emitWithAck(event, payload),
      close: () => socket.close(),
    }));
    socket.once('connect_error', (err) => {
      socket.close();
      reject(err);
    });
  });
}

function connectOne(kind: ClientKind, url: string, sessionId: string, timeoutMs: number, traced: boolean): Promise<Client> {
  return (kind === 'lean' ? openLean(url, timeoutMs) : openSocketIo(url, timeoutMs)).then((socket) => {
    const client: Client = { socket, sessionId, seen: new Set(), arrivals: traced ? [] : undefined };
    attach(client);
    return register(socket, sessionId, timeoutMs).then(() => client, (err: unknown) => {
      socket.close();
      throw err;
    });
  });
}

async function connectAll(command: Extract<WorkerCommand, { type: 'connect' }>): Promise<void> {
  const started = Date.now();
  groups = command.groups;
  let next = 0;
  let failed = 0;
  const errors: string[] = [];
  const traced = new Set(command.traced);
  const progress = setInterval(() => send({ type: 'connecting', connected: clients.length, failed }), 1000);
  const lane = async () => {
    while (next < command.sessionIds.length && !stopping) {
      const sessionId = command.sessionIds[next++]!;
      try {
        clients.push(await connectOne(command.client, command.url, sessionId, command.timeoutMs, traced.has(sessionId)));
      } catch (err) {
        failed += 1;
        if (errors.length < 5) errors.push(`${sessionId}: ${(err as Error).message}`);
      }
    }
  };
  await Promise.all(Array.from({ length: command.concurrency }, lane));
  clearInterval(progress);
  send({ type: 'ready', connected: clients.length, failed, errors, ms: Date.now() - started });
}

/** Registering again replays the session's inbox on push-center (used after an overload). */
async function reregisterAll(): Promise<void> {
  let ok = 0;
  let failed = 0;
  let next = 0;
  const lane = async () => {
    while (next < clients.length) {
      const client = clients[next++]!;
      try {
        await register(client.socket, client.sessionId, 20_000);
        ok += 1;
      } catch {
        failed += 1;
      }
    }
  };
  await Promise.all(Array.from({ length: 50 }, lane));
  send({ type: 'reregistered', ok, failed });
}

function report(): void {
  send({ type: 'stats', received, unique, acked, disconnects, hist: latency.takeDelta(), max: maxSinceReport });
  maxSinceReport = 0;
  for (const client of clients) {
    if (!client.arrivals?.length) continue;
    send({ type: 'arrivals', sessionId: client.sessionId, records: client.arrivals });
    client.arrivals = [];
  }
}

function stop(code: number): void {
  if (stopping) return;
  stopping = true;
  report();
  for (const client of clients) client.socket.close();
  send({ type: 'stopped' });
  // Let the IPC message and the close frames go out, but never wait long.
  setTimeout(() => process.exit(code), 300).unref();
  setTimeout(() => process.exit(code), 2000);
}

process.on('message', (command: WorkerCommand) => {
  lastHeartbeat = Date.now();
  switch (command.type) {
    case 'connect':
      void connectAll(command);
      break;
    case 'reregister':
      void reregisterAll();
      break;
    case 'stop':
      stop(0);
      break;
    case 'heartbeat':
      break;
  }
});
process.on('disconnect', () => stop(1));
setInterval(report, STATS_INTERVAL_MS);
setInterval(() => {
  if (Date.now() - lastHeartbeat > HEARTBEAT_TIMEOUT_MS) stop(2);
}, 1000);
