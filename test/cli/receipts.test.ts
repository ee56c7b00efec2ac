import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { cli, killCliChildren, spawnCli } from '../support/cli.js';
import { closeClients, collect, post, session, startNode, until, type Running } from '../support/harness.js';
import { AMQP_URL, REDIS_URL, cleanupRealEngines, realEngines, requireService, uniqueName } from '../support/services.js';

let node: Running | undefined;
let name = '';

beforeAll(async () => {
  await requireService('RabbitMQ', AMQP_URL);
  await requireService('Redis', REDIS_URL);
});
afterEach(async () => {
  killCliChildren();
  closeClients();
  await node?.close();
  node = undefined;
  if (name) await cleanupRealEngines(name);
  name = '';
});

async function realNode(): Promise<Running> {
  name = uniqueName('test-cli-receipts');
  node = await startNode({ ...realEngines(name), INBOX_MAX: 1 });
  return node;
}

describe('push-center receipts --follow', () => {
  it('prints each final outcome as a line, only the outcomes asked for, and stops at Ctrl-C with 0', async () => {
    const n = await realNode();
    const run = spawnCli(['receipts', '--follow', '--outcome', 'dead', '--outcome', 'dropped', '--amqp', AMQP_URL, '--exchange', `${name}.receipts`]);
    await until(() => run.stderr(), (text) => text.includes('following') || run.child.exitCode !== null, 15_000);
    const socket = await session(n.url, 'cli-live');
    collect(socket);
    await post(n.url, { id: 'cli-ok', session: 'cli-live', data: 1 });
    await post(n.url, [{ id: 'cli-full-1', session: 'cli-away', data: 1 }, { id: 'cli-full-2', session: 'cli-away', data: 2 }]);
    await post(n.url, { id: 'cli-volatile', session: 'cli-nobody', data: 1, delivery: 'volatile' });
    await until(() => run.stdout().split('\n').filter(Boolean).length, (count) => count >= 2, 10_000);
    run.child.kill('SIGINT');
    expect(await run.exited).toBe(0);
    const lines = run.stdout().trim().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines.find((l) => l.includes('cli-full-1'))).toMatch(/^\d\d:\d\d:\d\d\.\d{3} dead +session +cli-away +cli-full-1 .*inbox_full$/);
    expect(lines.find((l) => l.includes('cli-volatile'))).toMatch(/ dropped +session +cli-nobody +cli-volatile .*no_sockets$/);
  });

  it('prints the receipts as JSON lines with --json', async () => {
    const n = await realNode();
    const run = spawnCli(['receipts', '--follow', '--json', '--target', 'session'], {
      AMQP_URL, AMQP_RECEIPTS_EXCHANGE: `${name}.receipts`,
    });
    // --json writes nothing but receipts: wait until its queue is bound by publishing until one arrives.
    let i = 0;
    await until(async () => {
      await post(n.url, { id: `cli-json-${i++}`, session: 'cli-json-nobody', data: 1, delivery: 'volatile' });
      return run.stdout();
    }, (text) => text.includes('cli-json-'), 15_000);
    run.child.kill('SIGTERM');
    expect(await run.exited).toBe(0);
    const first = JSON.parse(run.stdout().split('\n')[0]!);
    expect(first).toMatchObject({ outcome: 'dropped', target: 'session', session: 'cli-json-nobody', reason: 'no_sockets', node: n.app.config.nodeId });
  });

  it('refuses to run without --follow, or with an outcome that is none (2), and names a missing exchange (1)', async () => {
    const noFollow = await cli(['receipts']);
    expect(noFollow.code).toBe(2);
    expect(noFollow.stderr).toContain('add --follow');
    const badOutcome = await cli(['receipts', '--follow', '--outcome', 'lost']);
    expect(badOutcome.code).toBe(2);
    expect(badOutcome.stderr).toContain('--outcome "lost": one of delivered, stored, dead, dropped');
    const missing = await cli(['receipts', '--follow', '--amqp', AMQP_URL, '--exchange', uniqueName('test-no-such-exchange')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/the receipts exchange '.*' does not exist/);
  });
});
