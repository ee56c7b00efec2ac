import { vi } from 'vitest';
import { describeNode } from './node.behaviour.js';

/**
 * The gateway writes envelopes straight to the engine.io connection where socket.io's internals are as
 * it expects (fast-path/packet-writer.ts), and falls back to `socket.emit` / `socket.timeout().emit` where
 * they are not (another socket.io version, connection state recovery). The fallback must behave the
 * same: the whole node suite runs here with direct writes reported unavailable, and the direct writers
 * made to throw, so that a delivery that still took the direct path fails its test instead of passing
 * unseen. (SOCKET_FAST_PATH=off takes the same way; test/e2e/fast-path-off.test.ts runs the suite so.)
 */
vi.mock('../../src/gateway/fast-path/packet-writer.js', async (importOriginal) => {
  const original = await importOriginal<typeof import('../../src/gateway/fast-path/packet-writer.js')>();
  const unavailable = (): never => {
    throw new Error('direct write used although supportsDirectWrite() said no');
  };
  return {
    ...original,
    supportsDirectWrite: () => false,
    writeEvent: unavailable,
    nextAckId: unavailable,
    writeSocketIoPacketsDirectly: unavailable,
  };
});

describeNode('embedded node, envelopes sent through socket.emit', async () => ({ env: {}, cleanup: async () => {} }));
