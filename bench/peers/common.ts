import { createServer, type Server as HttpServer } from 'node:http';
import { HEARTBEAT_TIMEOUT_MS, type PeerCommand, type PeerReport } from '../lib/ipc.js';

const HEARTBEAT_CHECK_MS = 1000;

/** What the peers share: the parent link (reports, commands, exit with the parent) and `register`. */

export function report(message: PeerReport): void {
  if (process.connected) process.send?.(message);
}

/**
 * Handles the parent's commands; exits when the parent disconnects, stops heartbeating, or says `stop`
 * (after `beforeExit`, bounded to 2 s).
 */
export function listenToParent(onCommand: (command: PeerCommand) => void, beforeExit: () => Promise<void> | void = () => undefined): void {
  let lastHeartbeat = Date.now();
  let exiting = false;
  const exit = (code: number) => {
    if (exiting) return;
    exiting = true;
    setTimeout(() => process.exit(code), 2000);
    void Promise.resolve()
      .then(beforeExit)
      .catch(() => undefined)
      .finally(() => process.exit(code));
  };
  process.on('message', (command: PeerCommand) => {
    lastHeartbeat = Date.now();
    if (command.type === 'stop') exit(0);
    else if (command.type !== 'heartbeat') onCommand(command);
  });
  process.on('disconnect', () => exit(1));
  process.on('SIGTERM', () => exit(0));
  let lastTick = Date.now();
  setInterval(() => {
    const now = Date.now();
    const late = now - lastTick > 2 * HEARTBEAT_CHECK_MS;
    lastTick = now;
    // A loop that was held (a peer working off a huge backlog of its own emits) has not read the heartbeats
    // that came meanwhile: timers run before the loop reads them, so look again at the next tick. A parent
    // that is gone still ends it: 'disconnect', and the guard every child runs.
    if (late) return;
    if (now - lastHeartbeat > HEARTBEAT_TIMEOUT_MS) exit(2);
  }, HEARTBEAT_CHECK_MS).unref();
}

/** An HTTP server on a free local port, reported to the parent once listening. */
export async function listenLocal(): Promise<HttpServer> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  report({ type: 'listening', port: typeof address === 'object' && address ? address.port : 0 });
  return server;
}

export interface Registration {
  sessionId: string;
  groups: string[];
}

/** The `register` payload of PROTOCOL §3 (`sessionId`/`socketId`, `groups`/`groupFlag`), without limits. */
export function parseRegister(request: unknown): Registration | undefined {
  if (typeof request !== 'object' || request === null) return undefined;
  const { sessionId, socketId, groups, groupFlag } = request as Record<string, unknown>;
  const session = sessionId ?? socketId;
  if (typeof session !== 'string' || session === '') return undefined;
  const raw = groups ?? groupFlag ?? [];
  const list = typeof raw === 'string' ? [raw] : raw;
  if (!Array.isArray(list) || !list.every((group) => typeof group === 'string')) return undefined;
  return { sessionId: session, groups: [...new Set(list as string[])] };
}

export type RegisterAck = (answer: unknown) => void;

export function refuse(ack: unknown): void {
  if (typeof ack === 'function') {
    (ack as RegisterAck)({ ok: false, error: { code: 'invalid_request', message: 'register takes { sessionId, groups }' } });
  }
}

export function fail(err: unknown): never {
  report({ type: 'failed', error: err instanceof Error ? err.message : String(err) });
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
}
