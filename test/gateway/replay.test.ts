import { afterEach, describe, expect, it } from 'vitest';
import type { Inbox, InboxEntry, Missed, StoreOptions } from '../../src/inbox/inbox.js';
import { MemoryInbox } from '../../src/inbox/memory-inbox.js';
import { closeClients, collect, connectClient, post, register, sleep, startNode, until, type Running } from '../support/harness.js';

/** A memory inbox whose reads can be held: the entries are read at once, handed over when released. */
class HeldInbox implements Inbox {
  readonly inner = new MemoryInbox({ maxPerSession: 100 }, { gaveUp: async () => {} });
  reads = 0;
  private held: Promise<void> | undefined;
  private release: (() => void) | undefined;

  hold(): void {
    this.held = new Promise((resolve) => (this.release = resolve));
  }

  let(): void {
    this.release?.();
    this.held = undefined;
  }

  async read(sessionId: string, limit: number): Promise<InboxEntry[]> {
    const entries = await this.inner.read(sessionId, limit);
    this.reads += 1;
    if (this.held) await this.held;
    return entries;
  }

  store(sessionId: string, entry: InboxEntry, options?: StoreOptions): Promise<void> {
    return this.inner.store(sessionId, entry, options);
  }

  remove(sessionId: string, id: string): Promise<boolean> {
    return this.inner.remove(sessionId, id);
  }

  removeAll(sessionId: string, ids: readonly string[]): Promise<number> {
    return this.inner.removeAll(sessionId, ids);
  }

  takeMissed(sessionId: string): Promise<Missed | undefined> {
    return this.inner.takeMissed(sessionId);
  }

  size(sessionId: string): Promise<number> {
    return this.inner.size(sessionId);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

const entry = (id: string): InboxEntry => ({ id, event: 'message', data: id, sentAt: Date.now(), reliable: true, expiresAt: Date.now() + 60_000 });

let node: Running | undefined;
afterEach(async () => {
  closeClients();
  await node?.close();
  node = undefined;
});

describe('inbox replay', () => {
  it('a replay asked for while one runs is not lost: what was stored after its last read follows', async () => {
    const inbox = new HeldInbox();
    node = await startNode({}, { inbox });
    const socket = await connectClient(node.url);
    const received = collect(socket);
    await inbox.store('racer', entry('early'));
    inbox.hold();
    // Registering replays the inbox: its read finds `early` and is held there.
    expect((await register(socket, { sessionId: 'racer' })).ok).toBe(true);
    await until(() => inbox.reads, (n) => n >= 1);
    // Meanwhile a message is stored for the session, and its sockets are asked to replay (as the
    // dispatcher does when the session registered while the message was on its way to the inbox).
    await inbox.store('racer', entry('late'));
    node.app.gateway.replay('racer');
    inbox.let();
    await until(() => received.map((r) => r.envelope.id), (ids) => ids.includes('late'));
    await until(() => inbox.size('racer'), (n) => n === 0);
    await sleep(50);
    expect(received.map((r) => r.envelope.id)).toEqual(['early', 'late']);
  });

  it('a socket registering with an empty inbox takes new messages at once, with no replay to wait for', async () => {
    const inbox = new HeldInbox();
    node = await startNode({}, { inbox });
    const socket = await connectClient(node.url);
    const received = collect(socket);
    // A replay now would hold the socket back (its read never returns): another tab of the session
    // acking meanwhile would leave this one without the message.
    inbox.hold();
    expect((await register(socket, { sessionId: 'fresh-tab' })).ok).toBe(true);
    const sent = await post(node.url, { id: 'right-away', session: 'fresh-tab', data: 1 });
    expect(sent.status).toBe(202);
    await until(() => received.map((r) => r.envelope.id), (ids) => ids.includes('right-away'), 2000);
    expect(inbox.reads).toBe(0);
    inbox.let();
  });
});
