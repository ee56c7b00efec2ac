import { existsSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { connect } from 'amqplib';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildClientBundle } from '../../src/client/bundle.js';
import type { Missed } from '../../src/gateway/protocol.js';
import { getJson, startNode, type Running } from '../support/harness.js';
import { AMQP_URL, REDIS_URL, cleanupRealEngines, realEngines, requireService, uniqueName } from '../support/services.js';

/** Debian's Chromium (no browser downloads here); `.ci/run` installs it when it is missing. */
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const SCREENSHOTS = fileURLToPath(new URL('../../test-results/', import.meta.url));

let node: Running;
let browser: Browser;
const name = uniqueName('test-browser');

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`Chromium not found at ${CHROMIUM}: install it with \`apt-get install chromium\` or set CHROMIUM_PATH`);
  }
  await requireService('RabbitMQ', AMQP_URL);
  await requireService('Redis', REDIS_URL);
  await buildClientBundle();
  node = await startNode(realEngines(name));
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
});
afterAll(async () => {
  await browser?.close();
  await node?.close();
  await cleanupRealEngines(name);
});

async function openDemo(sessionId: string, prepare?: (page: Page) => Promise<void>): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
  const problems: string[] = [];
  page.on('pageerror', (err) => problems.push(err.message));
  await prepare?.(page);
  await page.goto(`${node.url}/demo`);
  await page.fill('#session', sessionId);
  await page.click('#connect');
  await page.waitForSelector(`#status.online:has-text("registered as ${sessionId}")`, { timeout: 10_000 });
  expect(problems).toEqual([]);
  return page;
}

/**
 * Passes the page's WebSocket through to the node, adding `missed` to the node's answer to `register`:
 * the page's side of the gap notice (PROTOCOL §4.1), whatever the node would answer.
 */
async function answerWithMissed(page: Page, missed: Missed): Promise<void> {
  await page.routeWebSocket(/\/socket\.io\//, (ws) => {
    const server = ws.connectToServer();
    server.onMessage((frame) => ws.send(typeof frame === 'string' ? withMissed(frame, missed) : frame));
  });
}

/** An engine.io message holding a socket.io ack (`43<id>[answer]`) of a registration, with `missed` added. */
function withMissed(frame: string, missed: Missed): string {
  const ack = /^43(\d+)(\[.*\])$/s.exec(frame);
  if (!ack) return frame;
  const [answer] = JSON.parse(ack[2]!) as [{ ok?: boolean }];
  return answer?.ok === true ? `43${ack[1]}${JSON.stringify([{ ...answer, missed }])}` : frame;
}

describe('the admin page in a real browser', () => {
  it('shows the nodes, the consumer, the dead letters by reason and a session\'s inbox', async () => {
    const connection = await connect(AMQP_URL);
    const channel = await connection.createConfirmChannel();
    channel.sendToQueue(name, Buffer.from('this is not JSON'), { persistent: true, contentType: 'application/json' });
    await channel.waitForConfirms();
    await connection.close();
    const posted = await fetch(`${node.url}/v1/notifications`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify([1, 2, 3].map((i) => ({ id: `waiting-${i}`, session: 'admin-looked-up', data: { n: i } }))),
    });
    expect(posted.status).toBe(202);

    const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
    const problems: string[] = [];
    page.on('pageerror', (err) => problems.push(err.message));
    await page.goto(`${node.url}/admin`);
    await page.waitForSelector(`#nodes td:has-text("${node.app.config.nodeId} (this one)")`, { timeout: 10_000 });
    await page.waitForSelector('#consumer td:has-text("RabbitMQ")');
    await page.waitForSelector('#dead td:has-text("not_json")', { timeout: 10_000 });
    await page.waitForSelector('#dead-waiting:has-text("waiting in the dead-letter queue")');

    await page.fill('#session', 'admin-looked-up');
    await page.click('#lookup button');
    await page.waitForSelector('#where:has-text("admin-looked-up: offline; 3 waiting in its inbox.")', { timeout: 10_000 });
    expect(await page.locator('#inbox tbody tr').count()).toBe(3);
    await page.waitForSelector('#inbox td:has-text("waiting-1")');
    expect(problems).toEqual([]);
    mkdirSync(SCREENSHOTS, { recursive: true });
    const file = `${SCREENSHOTS}admin-page.png`;
    await page.screenshot({ path: file, fullPage: true });
    console.info(`admin page screenshot: ${file}`);
    await page.close();
  });
});

describe('the admin page with API keys', () => {
  it('is refused without a key that has read and admin, and shows the cluster with one', async () => {
    const guarded = await startNode({ API_KEYS: 'ops-key-1:read+admin,reader-key-1:read' });
    const page = await browser.newPage({ viewport: { width: 1200, height: 700 } });
    try {
      await page.goto(`${guarded.url}/admin`);
      await page.waitForSelector('#status.error:has-text("401")', { timeout: 10_000 });
      expect(await page.locator('#nodes tbody tr').count()).toBe(0);

      await page.fill('#key', 'reader-key-1');
      await page.dispatchEvent('#key', 'change');
      await page.waitForSelector('#status.error:has-text("403")', { timeout: 10_000 });
      expect(await page.textContent('#status')).toContain('lacks the admin scope');

      await page.fill('#key', 'ops-key-1');
      await page.dispatchEvent('#key', 'change');
      await page.waitForSelector(`#nodes td:has-text("${guarded.app.config.nodeId} (this one)")`, { timeout: 10_000 });
      await page.waitForSelector('#status.online');
    } finally {
      await page.close();
      await guarded.close();
    }
  });
});

describe('the demo page in a real browser', () => {
  it('shows a notification sent from the page over HTTP and one published to RabbitMQ', async () => {
    const page = await openDemo('browser-user');
    expect((await getJson(node.url, '/v1/sessions/browser-user')).body.online).toBe(true);
    expect(await page.isHidden('#gap')).toBe(true);

    await page.fill('#target', 'browser-user');
    await page.fill('#data', '{"title": "sent over HTTP from the page"}');
    await page.click('#send');
    await page.waitForSelector('#send-result:has-text("sent:")');
    await page.waitForSelector('#messages li:has-text("sent over HTTP from the page")', { timeout: 10_000 });

    const connection = await connect(AMQP_URL);
    const channel = await connection.createConfirmChannel();
    channel.sendToQueue(name, Buffer.from(JSON.stringify({
      id: 'from-rabbitmq', session: 'browser-user', event: 'news', data: { title: 'published to RabbitMQ' },
    })), { persistent: true, contentType: 'application/json' });
    await channel.waitForConfirms();
    await connection.close();
    await page.waitForSelector('#messages li[data-id="from-rabbitmq"]:has-text("published to RabbitMQ")', { timeout: 10_000 });

    // Both were reliable: the page acked them, nothing waits in the inbox.
    expect((await getJson(node.url, '/v1/sessions/browser-user')).body.inbox).toBe(0);
    mkdirSync(SCREENSHOTS, { recursive: true });
    const file = `${SCREENSHOTS}demo.png`;
    await page.screenshot({ path: file, fullPage: true });
    console.info(`demo page screenshot: ${file}`);
    await page.close();
  });

  it('shows a notice when the register answer says messages were missed', async () => {
    const page = await openDemo('browser-away', (page) => answerWithMissed(page, { count: 3, since: Date.now() - 60_000 }));
    await page.waitForSelector('#gap:visible:has-text("3 messages were given up while you were away")');
    expect(await page.textContent('#gap')).toMatch(/the first at .+; the app should re-sync\.$/);
    await page.close();
  });

  it('shows the server\'s reason when a send is refused', async () => {
    const page = await openDemo('browser-refused');
    await page.fill('#target', 'browser-refused');
    await page.fill('#event', 'connect');
    await page.click('#send');
    await page.waitForSelector('#send-result.bad:has-text("reserved")');
    await page.close();
  });
});

describe('the documentation and static routes', () => {
  it('serves the OpenAPI description generated from the route schemas', async () => {
    const { status, body } = await getJson(node.url, '/docs/json');
    expect(status).toBe(200);
    expect(body.openapi).toMatch(/^3\./);
    expect(Object.keys(body.paths).sort()).toEqual([
      '/healthz', '/metrics', '/readyz', '/v1/admin/overview', '/v1/cluster', '/v1/dead-letters', '/v1/notifications',
      '/v1/notifications/{id}', '/v1/sessions/{id}', '/v1/sessions/{id}/inbox',
    ]);
    const post = body.paths['/v1/notifications'].post;
    const schema = post.requestBody.content['application/json'].schema;
    const single = schema.anyOf[0];
    expect(Object.keys(single.properties)).toEqual(expect.arrayContaining(['session', 'group', 'broadcast', 'data', 'event', 'delivery', 'ttl', 'id']));
    // 401 and 403 only on a node with API_KEYS (test/e2e/access.test.ts).
    expect(Object.keys(post.responses).sort()).toEqual(['202', '400', '409', '413', '415', '422', '429', '503']);
    expect(Object.keys(body.paths['/v1/sessions/{id}'].get.responses['200'].content['application/json'].schema.properties).sort())
      .toEqual(['inbox', 'nodes', 'online', 'sockets']);
  });

  it('serves the documentation page at /docs', async () => {
    const response = await fetch(`${node.url}/docs`);
    expect(response.status).toBe(200);
    expect(await response.text()).toMatch(/swagger/i);
  });

  it('serves the demo page and the SDK bundle, and sends / to the demo', async () => {
    const demo = await fetch(`${node.url}/demo`);
    expect(demo.headers.get('content-type')).toMatch(/text\/html/);
    const bundle = await fetch(`${node.url}/push-center-client.js`);
    expect(bundle.headers.get('content-type')).toMatch(/javascript/);
    expect(await bundle.text()).toMatch(/PushCenterClient/);
    const root = await fetch(`${node.url}/`, { redirect: 'manual' });
    expect(root.status).toBe(302);
    expect(root.headers.get('location')).toBe('/demo');
  });
});
