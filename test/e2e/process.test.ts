import { afterEach, describe, expect, it } from 'vitest';
import { closeClients, collect, post, session, until } from '../support/harness.js';
import { runMain, startProcess, type NodeProcess } from '../support/process.js';

let running: NodeProcess | undefined;
afterEach(async () => {
  closeClients();
  await running?.stop('SIGKILL');
  running = undefined;
});

describe('the push-center process', () => {
  it('says at start-up that the embedded default is not durable', async () => {
    running = await startProcess();
    expect(running.output()).toMatch(/embedded mode: the queue lives in this process and is NOT durable/);
  });

  it('delivers, then on SIGTERM closes its sockets and exits 0', async () => {
    running = await startProcess();
    const socket = await session(running.url, 'proc-session');
    const received = collect(socket);
    const disconnected = new Promise<string>((resolve) => socket.once('disconnect', resolve));
    expect((await post(running.url, { session: 'proc-session', data: 'hello' })).status).toBe(202);
    await until(() => received.length, (n) => n === 1);

    expect(await running.stop('SIGTERM')).toBe(0);
    // A closed transport (not a server "disconnect" packet) lets clients reconnect, to another node.
    expect(await disconnected).toBe('transport close');
    expect(running.output()).toMatch(/shutting down/);
    expect(running.output()).toMatch(/"msg":"stopped"/);
  });

  it('exits 0 on SIGINT too', async () => {
    running = await startProcess();
    expect(await running.stop('SIGINT')).toBe(0);
  });

  it('refuses to start with a bad setting, naming it', async () => {
    const { output, exited } = runMain({ AMQP_PREFETCH: 'lots', INBOX_MAX: '0' });
    expect(await exited).toBe(1);
    expect(output()).toMatch(/AMQP_PREFETCH="lots": must be a whole number/);
    expect(output()).toMatch(/INBOX_MAX="0": must be a whole number from 1/);
  });

  it('refuses to start with a malformed API_KEYS entry, naming it without printing the key', async () => {
    const { output, exited } = runMain({ API_KEYS: 'good-Key-1:publish, bad Key-S3cr3t:read' });
    expect(await exited).toBe(1);
    expect(output()).toMatch(/API_KEYS entry 2 \("bad…", 14 characters\): the key holds whitespace/);
    expect(output()).not.toContain('Key-S3cr3t');
  });

  it('refuses to start in production without authentication', async () => {
    const { output, exited } = runMain({ NODE_ENV: 'production' });
    expect(await exited).toBe(1);
    expect(output()).toMatch(/NODE_ENV=production without authentication/);
  });
});
