import { connect } from 'amqplib';
import { Histogram } from '../lib/histogram.js';
import { STATS_INTERVAL_MS } from '../lib/ipc.js';
import { fail, listenToParent, report } from './common.js';

/**
 * Peer 2, the ceiling for the broker: a consumer on the same kind of queue, with the same prefetch, fed
 * by the same publisher, that parses each message and acks it — and does nothing else. It acks one
 * message at a time, as most consumers do (push-center acks the finished prefix with one multiple-ack
 * every few ms, which costs the broker less).
 */

const url = process.env.BENCH_AMQP_URL!;
const queue = process.env.BENCH_QUEUE!;
const prefetch = Number(process.env.BENCH_PREFETCH);

async function main(): Promise<void> {
  const connection = await connect(url, { clientProperties: { connection_name: 'push-center-bench:rabbitmq-peer' } });
  connection.on('error', () => undefined);
  const channel = await connection.createChannel();
  channel.on('error', () => undefined);
  await channel.prefetch(prefetch, false);

  const latency = new Histogram();
  const seen = new Set<number>();
  let received = 0;
  let acked = 0;
  let maxSinceReport = 0;
  await channel.consume(queue, (msg) => {
    if (!msg) return;
    const body = JSON.parse(msg.content.toString()) as { data: { t: number; s: number } };
    const ms = Date.now() - body.data.t;
    received += 1;
    seen.add(body.data.s);
    latency.record(ms);
    if (ms > maxSinceReport) maxSinceReport = ms;
    channel.ack(msg);
    acked += 1;
  }, { noAck: false });

  setInterval(() => {
    report({ type: 'stats', received, unique: seen.size, acked, disconnects: 0, hist: latency.takeDelta(), max: maxSinceReport });
    maxSinceReport = 0;
  }, STATS_INTERVAL_MS);
  report({ type: 'listening', port: 0 });
  listenToParent(() => undefined, () => connection.close());
}

main().catch(fail);
