import { describe, expect, it, vi } from 'vitest';
import { probeFastPath } from '../../../src/gateway/fast-path/probe.js';
import { startNode } from '../../support/harness.js';

/** A process whose ws is not the version the fast path was tested with. */
vi.mock('../../../src/gateway/fast-path/tested-versions.js', async (importOriginal) => {
  const original = await importOriginal<typeof import('../../../src/gateway/fast-path/tested-versions.js')>();
  return {
    ...original,
    fastPathVersionMismatches: () => [{ name: 'ws' as const, tested: original.FAST_PATH_TESTED_VERSIONS.ws, loaded: '9.0.0' }],
  };
});

describe('the fast path probe, when a library is not the tested version', () => {
  it('turns every part off and says which library changed', async () => {
    const { parts, mismatches } = await probeFastPath();
    expect(parts).toEqual({ eventWriter: false, groupWriter: false, ackReader: false });
    expect(mismatches).toHaveLength(1);
    expect(mismatches[0]).toMatch(/^ws changed from \S+ \(tested\) to 9\.0\.0 \(loaded\)/);
  });

  it('leaves the node on socket.io alone, and exports that', async () => {
    const node = await startNode();
    try {
      const text = await (await fetch(`${node.url}/metrics`)).text();
      for (const part of ['event_writer', 'group_writer', 'ack_reader']) expect(text).toContain(`pushcenter_fast_path{part="${part}"} 0`);
    } finally {
      await node.close();
    }
  });
});
