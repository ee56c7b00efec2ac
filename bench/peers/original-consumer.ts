import { connect } from 'amqplib';
import { Redis } from 'ioredis';
import { fail, listenToParent, report } from './common.js';

/**
 * Peer 4, the original message center's consumer: prefetch 1, and each message is acked the moment it
 * arrives — before it is delivered, so a crash or a slow socket server loses it — then PUBLISHed on one
 * Redis channel per target session (`session:<id>`) or group (`group:<name>`). Nothing waits for the
 * socket server: when it falls behind, Redis buffers for it.
 */

const prefix = process.env.BENCH_CHANNEL_PREFIX!;

interface Notification {
  id: string;
  session?: string | string[];
  group?: string | string[];
  delivery?: string;
  data: { t: number };
}

async function main(): Promise<void> {
  const redis = new Redis(process.env.BENCH_REDIS_URL!, { lazyConnect: true, connectionName: 'push-center-bench:original-consumer' });
  redis.on('error', () => undefined);
  await redis.connect();
  const connection = await connect(process.env.BENCH_AMQP_URL!, { clientProperties: { connection_name: 'push-center-bench:original-consumer' } });
  connection.on('error', () => undefined);
  const channel = await connection.createChannel();
  channel.on('error', () => undefined);
  await channel.prefetch(1, false);
  await channel.consume(process.env.BENCH_QUEUE!, (msg) => {
    if (!msg) return;
    channel.ack(msg);
    const n = JSON.parse(msg.content.toString()) as Notification;
    const reliable = n.delivery !== 'volatile';
    for (const session of [n.session ?? []].flat()) {
      void redis.publish(`${prefix}session:${session}`, JSON.stringify({ id: n.id, event: 'message', data: n.data, sentAt: n.data.t, reliable }));
    }
    for (const group of [n.group ?? []].flat()) {
      void redis.publish(`${prefix}group:${group}`, JSON.stringify({ id: n.id, event: 'message', data: n.data, sentAt: n.data.t, reliable, group }));
    }
  }, { noAck: false });
  report({ type: 'listening', port: 0 });
  listenToParent(() => undefined, async () => {
    await connection.close();
    redis.disconnect();
  });
}

main().catch(fail);
