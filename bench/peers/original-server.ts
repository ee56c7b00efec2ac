import { Redis } from 'ioredis';
import { Server, type Socket } from 'socket.io';
import { fail, listenLocal, listenToParent, parseRegister, refuse, report, type RegisterAck } from './common.js';

/**
 * Peer 4, the original message center's socket server: SUBSCRIBEs one Redis channel per registered
 * session (and group) and emits whatever arrives on it to that session's sockets, volatile or not as the
 * message says. No acks and no inbox: a message the consumer acked is delivered now or never.
 */

const prefix = process.env.BENCH_CHANNEL_PREFIX!;

async function main(): Promise<void> {
  const sub = new Redis(process.env.BENCH_REDIS_URL!, { lazyConnect: true, connectionName: 'push-center-bench:original-server' });
  sub.on('error', () => undefined);
  await sub.connect();
  const channels = new Map<string, Set<Socket>>();
  let processed = 0;

  const subscribe = (channel: string, socket: Socket) => {
    let sockets = channels.get(channel);
    if (!sockets) {
      channels.set(channel, (sockets = new Set()));
      void sub.subscribe(channel);
    }
    sockets.add(socket);
  };
  const unsubscribe = (channel: string, socket: Socket) => {
    const sockets = channels.get(channel);
    if (!sockets?.delete(socket) || sockets.size > 0) return;
    channels.delete(channel);
    void sub.unsubscribe(channel);
  };

  sub.on('message', (channel: string, text: string) => {
    processed += 1;
    const sockets = channels.get(channel);
    if (!sockets) return;
    const env = JSON.parse(text) as { reliable: boolean };
    for (const socket of sockets) (env.reliable ? socket : socket.volatile).emit('message', env);
  });

  const io = new Server({ serveClient: false, maxHttpBufferSize: 64 * 1024 });
  io.on('connection', (socket) => {
    let joined: string[] = [];
    socket.on('register', (request: unknown, ack?: RegisterAck) => {
      const registration = parseRegister(request);
      if (!registration) return refuse(ack);
      for (const channel of joined) unsubscribe(channel, socket);
      joined = [`${prefix}session:${registration.sessionId}`, ...registration.groups.map((group) => `${prefix}group:${group}`)];
      for (const channel of joined) subscribe(channel, socket);
      if (typeof ack === 'function') ack({ ok: true, ...registration });
    });
    socket.on('disconnect', () => {
      for (const channel of joined) unsubscribe(channel, socket);
      joined = [];
    });
  });
  io.attach(await listenLocal());
  setInterval(() => report({ type: 'progress', sent: 0, processed, pending: 0, skipped: 0 }), 100);
  listenToParent(() => undefined, () => new Promise<void>((resolve) => {
    io.close(() => {
      sub.disconnect();
      resolve();
    });
  }));
}

main().catch(fail);
