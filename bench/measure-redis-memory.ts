/**
 * Redis memory per inbox entry, per acked id, per receipt (accepted and delivered, as a reliable session
 * message leaves it) and per claimed notification id, as docs/ARCHITECTURE.md and docs/SCALING.md quote them:
 * `npx tsx bench/measure-redis-memory.ts` (needs Redis on REDIS_URL, default localhost; writes and then
 * deletes keys under its own prefix).
 */
import { Redis } from 'ioredis';
import { RedisAckLog } from '../src/inbox/redis-ack-log.js';
import { RedisInbox } from '../src/inbox/redis-inbox.js';
import { RedisIdClaims, RedisReceipts } from '../src/receipts/redis-receipts.js';

const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = `measure-${process.pid}:`;
const sessions = 1_000;
const perSession = 100;

/** A UUID-shaped message id, as backends usually send. */
function messageId(n: number): string {
  return `0b6c1c1e-5d0e-4f7e-9b1a-${String(n).padStart(12, '0')}`;
}

async function usedMemory(redis: Redis): Promise<number> {
  const info = await redis.info('memory');
  return Number(/used_memory:(\d+)/.exec(info)![1]);
}

async function main(): Promise<void> {
  const redis = new Redis(url);
  try {
    const inbox = new RedisInbox(redis, { keyPrefix: prefix, maxPerSession: perSession }, { gaveUp: async () => {} });
    const base = await usedMemory(redis);
    const now = Date.now();
    const entry = (n: number) => ({
      id: messageId(n),
      event: 'message',
      data: { title: 'Your order has shipped', order: 12345 },
      sentAt: now,
      reliable: true,
      expiresAt: now + 600_000,
    });
    for (let s = 0; s < sessions; s += 1) {
      await Promise.all(Array.from({ length: perSession }, (_, i) => inbox.store(`session-${s}`, entry(s * perSession + i))));
    }
    const inboxBytes = (await usedMemory(redis)) - base;
    const log = new RedisAckLog(redis, { keyPrefix: prefix });
    const before = await usedMemory(redis);
    for (let s = 0; s < sessions; s += 1) {
      await Promise.all(Array.from({ length: perSession }, (_, i) => log.record(`acker-${s}`, messageId(s * perSession + i))));
    }
    const ackBytes = (await usedMemory(redis)) - before;
    const entries = sessions * perSession;
    const receipts = new RedisReceipts(redis, { keyPrefix: prefix, ttlMs: 86_400_000, maxReceipts: 10_000_000 });
    const beforeReceipts = await usedMemory(redis);
    for (let n = 0; n < entries; n += 1) {
      const at = now + n;
      receipts.add(messageId(n), { at, outcome: 'accepted', node: 'node-1', target: { session: [`session-${n % sessions}`] } });
      receipts.add(messageId(n), { at: at + 3, outcome: 'delivered', node: 'node-1' });
      if (n % 1000 === 999) await receipts.close();
    }
    await receipts.close();
    const receiptBytes = (await usedMemory(redis)) - beforeReceipts;
    const claims = new RedisIdClaims(redis, { keyPrefix: prefix, windowMs: 86_400_000, maxIds: 10_000_000 });
    const beforeClaims = await usedMemory(redis);
    for (let n = 0; n < entries; n += 1000) {
      await Promise.all(Array.from({ length: 1000 }, (_, i) => claims.claim(messageId(n + i))));
    }
    const claimBytes = (await usedMemory(redis)) - beforeClaims;
    console.log(JSON.stringify({
      entries,
      inboxBytesPerEntry: Math.round(inboxBytes / entries),
      ackedIdBytesPerId: Math.round(ackBytes / entries),
      receiptBytesPerNotification: Math.round(receiptBytes / entries),
      claimBytesPerId: Math.round(claimBytes / entries),
      entryJsonBytes: JSON.stringify(entry(0)).length,
    }));
    await log.close();
    await inbox.close();
  } finally {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await redis.del(...keys);
    } while (cursor !== '0');
    redis.disconnect();
  }
}

await main();
