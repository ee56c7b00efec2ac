import { Server, type Socket } from 'socket.io';
import type { RunCommand } from '../lib/ipc.js';
import { Pacer } from '../lib/pacer.js';
import { envelope, GROUP, sessionFor } from '../lib/payload.js';
import { fail, listenLocal, listenToParent, parseRegister, refuse, report, type RegisterAck } from './common.js';

/**
 * Peer 1, the ceiling for the sockets: socket.io emitting straight to the same clients. The messages are
 * made in this process, so there is no broker, no Redis and no parsing; the server only does what any
 * socket.io server must: look up the session's sockets and emit.
 * - reliable: `socket.timeout().emit(…, ack)`, at most `window` un-acked emits at a time;
 * - volatile: `socket.volatile.emit(…)`, as fast as it can (socket.io drops what a busy socket cannot take);
 * - group: `io.to(room).emit(…)` to one room of every member.
 * Like the other systems, it is held to the run's backlog bound (the parent's `limit`), so a
 * non-volatile emit never buffers without bound.
 * Server options as push-center's where they matter: websocket + polling, no compression.
 */

const ACK_TIMEOUT_MS = 10_000;

const io = new Server({ serveClient: false, maxHttpBufferSize: 64 * 1024 });
const sessions = new Map<string, Set<Socket>>();
let run: RunCommand | undefined;
let limit = Number.POSITIVE_INFINITY;
let seq = 0;
let pending = 0;
let timeouts = 0;

io.on('connection', (socket) => {
  let current: string | undefined;
  socket.on('register', (request: unknown, ack?: RegisterAck) => {
    const registration = parseRegister(request);
    if (!registration) return refuse(ack);
    if (current !== undefined) sessions.get(current)?.delete(socket);
    current = registration.sessionId;
    let sockets = sessions.get(current);
    if (!sockets) sessions.set(current, (sockets = new Set()));
    sockets.add(socket);
    for (const group of registration.groups) void socket.join(`g:${group}`);
    if (typeof ack === 'function') ack({ ok: true, ...registration });
  });
  socket.on('disconnect', () => {
    if (current !== undefined) sessions.get(current)?.delete(socket);
  });
});

const pacer = new Pacer({
  hasRoom() {
    if (!run || pacer.sent >= limit) return false;
    return run.target === 'group' || !run.reliable || pending < run.window;
  },
  sendNext() {
    const { target, reliable, sessions: count } = run!;
    const s = seq++;
    const now = Date.now();
    if (target === 'group') {
      const room = io.to(`g:${GROUP}`);
      (reliable ? room : room.volatile).emit('message', envelope(s, reliable, now, GROUP));
      return;
    }
    const sockets = sessions.get(sessionFor(s, count));
    if (!sockets) return;
    const env = envelope(s, reliable, now);
    for (const socket of sockets) {
      if (!reliable) {
        socket.volatile.emit('message', env);
        continue;
      }
      pending += 1;
      socket.timeout(ACK_TIMEOUT_MS).emit('message', env, (err: Error | null) => {
        pending -= 1;
        if (err) timeouts += 1;
        pacer.kick();
      });
    }
  },
});

async function halt(): Promise<void> {
  pacer.stop();
  const deadline = Date.now() + ACK_TIMEOUT_MS + 1000;
  while (pending > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
  report({ type: 'halted', sent: pacer.sent, pending, skipped: pacer.skipped });
}

async function main(): Promise<void> {
  const server = await listenLocal();
  io.attach(server);
  setInterval(() => report({ type: 'progress', sent: pacer.sent, processed: pacer.sent, pending, skipped: pacer.skipped }), 100);
  listenToParent((command) => {
    if (command.type === 'run') {
      run = command;
      limit = Number.POSITIVE_INFINITY;
      seq = command.seqStart;
      pacer.start({ mode: command.mode, rate: command.rate });
    } else if (command.type === 'limit') {
      limit = command.maxSent;
      pacer.kick();
    } else if (command.type === 'halt') {
      void halt();
    }
  }, () => new Promise<void>((resolve) => {
    if (timeouts > 0) process.stderr.write(`direct socket.io: ${timeouts} acks timed out\n`);
    io.close(() => resolve());
  }));
}

main().catch(fail);
