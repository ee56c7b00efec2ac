import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MemoryCluster } from '../../src/cluster/memory.js';
import { captureLogs, describeBus, notification } from './bus.behaviour.js';
import { describeDirectory } from './directory.behaviour.js';

let hub: MemoryCluster;
const opened: Array<{ close(): Promise<void> }> = [];

function track<T extends { close(): Promise<void> }>(part: T): T {
  opened.push(part);
  return part;
}

beforeEach(() => {
  hub = new MemoryCluster({ forwardTimeoutMs: 2000, logger: pino({ level: 'silent' }) });
});

afterEach(async () => {
  for (const part of opened.splice(0)) await part.close();
});

describeDirectory('MemoryCluster', async (nodeId) => track(hub.directory(nodeId)));

describeBus('MemoryCluster', async (nodeId, options = {}) => {
  const { logger, logs } = captureLogs();
  return { bus: track(hub.bus(nodeId, { ...options, logger })), logs };
});

describe('MemoryCluster', () => {
  it('is the embedded cluster with one node: every session is local or offline', async () => {
    const directory = track(hub.directory('only'));
    const bus = track(hub.bus('only'));
    await directory.setLocalSockets('s1', 2);

    expect(directory.knownRemoteNodes('s1')).toEqual([]);
    expect(await directory.remoteNodes('s1')).toEqual([]);
    expect(await directory.presence('s1')).toEqual({ nodes: ['only'], sockets: 2 });
    expect(await bus.forward('other', 's1', notification('m1'))).toBe('not_delivered');
    expect(directory.connected && bus.connected).toBe(true);
  });

  it('gives a node id to one open directory at a time, and takes it back when that closes', async () => {
    const first = track(hub.directory('A'));
    expect(() => hub.directory('A')).toThrow(/node id "A" is already used by a running node/);
    await first.close();
    expect(track(hub.directory('A')).nodeId).toBe('A');
  });

  it('rejects invalid settings with a reason', () => {
    const logger = pino({ level: 'silent' });
    expect(() => new MemoryCluster({ forwardTimeoutMs: 0, logger })).toThrow(/forwardTimeoutMs/);
    expect(() => hub.bus('A', { forwardTimeoutMs: -1 })).toThrow(/forwardTimeoutMs/);
    expect(() => hub.directory('')).toThrow(/nodeId/);
    expect(() => hub.bus('')).toThrow(/nodeId/);
  });
});
