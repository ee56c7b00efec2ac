import { Redis } from 'ioredis';
import { Server } from 'socket.io';
import { createAdapter } from '@socket.io/redis-adapter';
import { fail, listenLocal, listenToParent, parseRegister, refuse, report, type RegisterAck } from './common.js';

/**
 * Peer 3, what socket.io users pick instead of a message center: a socket.io server with
 * `@socket.io/redis-adapter`; backends push with `@socket.io/redis-emitter` (in the bench process).
 * A session is the room `s:<id>`, a group the room `g:<name>`. No acks (the emitter cannot wait for
 * one), no inbox, nothing durable: a message for a socket that is not there is gone.
 * Reports how many emitter messages it has taken from Redis, which the emitter uses as its window.
 */

const url = process.env.BENCH_REDIS_URL!;
const key = process.env.BENCH_ADAPTER_KEY!;

async function main(): Promise<void> {
  const pub = new Redis(url, { lazyConnect: true, connectionName: 'push-center-bench:adapter-pub' });
  const sub = pub.duplicate({ connectionName: 'push-center-bench:adapter-sub' });
  pub.on('error', () => undefined);
  sub.on('error', () => undefined);
  await Promise.all([pub.connect(), sub.connect()]);
  let processed = 0;
  // The adapter's own listener runs first, so this counts messages already emitted to the sockets.
  const io = new Server({ serveClient: false, maxHttpBufferSize: 64 * 1024, adapter: createAdapter(pub, sub, { key }) });
  sub.on('pmessageBuffer', () => {
    processed += 1;
  });
  io.on('connection', (socket) => {
    socket.on('register', (request: unknown, ack?: RegisterAck) => {
      const registration = parseRegister(request);
      if (!registration) return refuse(ack);
      for (const room of socket.rooms) if (room !== socket.id) void socket.leave(room);
      void socket.join([`s:${registration.sessionId}`, ...registration.groups.map((group) => `g:${group}`)]);
      if (typeof ack === 'function') ack({ ok: true, ...registration });
    });
  });
  io.attach(await listenLocal());
  setInterval(() => report({ type: 'progress', sent: 0, processed, pending: 0, skipped: 0 }), 100);
  listenToParent(() => undefined, () => new Promise<void>((resolve) => {
    io.close(() => {
      pub.disconnect();
      sub.disconnect();
      resolve();
    });
  }));
}

main().catch(fail);
