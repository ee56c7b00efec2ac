import { afterEach, describe, expect, it } from 'vitest';
import { probeFastPath } from '../../../src/gateway/fast-path/probe.js';
import { metric, startNode, type Running } from '../../support/harness.js';

let node: Running | undefined;
afterEach(async () => {
  await node?.close();
  node = undefined;
});

const PARTS = ['event_writer', 'group_writer', 'ack_reader'];

describe('the fast path probe', () => {
  it('sees every part work with the socket.io, engine.io and ws versions installed', async () => {
    expect(await probeFastPath()).toEqual({ parts: { eventWriter: true, groupWriter: true, ackReader: true }, mismatches: [] });
  });

  it('is exported per part: 1 for the parts in use', async () => {
    node = await startNode();
    for (const part of PARTS) expect(await metric(node.url, 'pushcenter_fast_path', { part })).toBe(1);
  });

  it('is 0 for a part SOCKET_FAST_PATH leaves out', async () => {
    node = await startNode({ SOCKET_FAST_PATH: 'event_writer,ack_reader' });
    expect(await metric(node.url, 'pushcenter_fast_path', { part: 'event_writer' })).toBe(1);
    expect(await metric(node.url, 'pushcenter_fast_path', { part: 'ack_reader' })).toBe(1);
    const text = await (await fetch(`${node.url}/metrics`)).text();
    expect(text).toContain('pushcenter_fast_path{part="group_writer"} 0');
  });

  it('is all 0 with SOCKET_FAST_PATH=off', async () => {
    node = await startNode({ SOCKET_FAST_PATH: 'off' });
    const text = await (await fetch(`${node.url}/metrics`)).text();
    for (const part of PARTS) expect(text).toContain(`pushcenter_fast_path{part="${part}"} 0`);
  });
});
