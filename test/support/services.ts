import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';

/** The real services the integration tests use; CI runs them on this machine. */
export const AMQP_URL = process.env.TEST_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
export const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** A name no other test (or test run) uses: queues, exchanges, Redis key prefixes. */
export function uniqueName(prefix: string): string {
  return `${prefix}.${process.pid}.${randomBytes(4).toString('hex')}`;
}

/**
 * Fails (never skips) with a message that says what is missing and how to start it, when a service
 * the test needs is not reachable.
 */
export async function requireService(name: 'RabbitMQ' | 'Redis', url: string): Promise<void> {
  const { hostname, port } = new URL(url);
  const reachable = await new Promise<boolean>((resolve) => {
    const socket = connect({ host: hostname, port: Number(port) }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.setTimeout(2000, () => {
      socket.destroy();
      resolve(false);
    });
    socket.on('error', () => resolve(false));
  });
  if (!reachable) {
    const start = name === 'RabbitMQ' ? 'rabbitmq-server -detached' : 'redis-server --daemonize yes';
    throw new Error(`${name} is not reachable at ${hostname}:${port}; these tests need it running (e.g. \`${start}\`)`);
  }
}
