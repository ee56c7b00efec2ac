import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Server, type Socket } from 'socket.io';
import { io as connectClient } from 'socket.io-client';
import type { FastPathParts } from '../../config/config.js';
import { orAfter } from '../../util/timeout.js';
import { readAcksDirectly } from './ack-reader.js';
import { nextAckId, supportsDirectWrite, writeEvent, writeSocketIoPacketsDirectly } from './packet-writer.js';
import { describeMismatch, fastPathVersionMismatches } from './tested-versions.js';

export const FAST_PATH_OFF: FastPathParts = { eventWriter: false, groupWriter: false, ackReader: false };

const PROBE_TIMEOUT_MS = 3000;

export interface FastPathProbe {
  parts: FastPathParts;
  /** Why the fast path is off although asked for: the loaded libraries are not the tested versions. */
  mismatches: string[];
}

let probed: Promise<FastPathProbe> | undefined;

/**
 * Which parts of the fast path this process may use. None unless socket.io, engine.io, ws and the parser
 * and adapter are the versions it was tested against (tested-versions.ts). Then a real connection over
 * loopback (a server of its own on a free port and a socket.io-client), through which each part is put
 * in place and used once: an event written with an ack id, its ack read off the WebSocket, a room emit
 * written as a frame. A part that is not in place, throws, or does not deliver within a few seconds is
 * off, and the node uses socket.io's own way for it. Run once per process (the libraries do not change).
 */
export function probeFastPath(): Promise<FastPathProbe> {
  probed ??= (async () => {
    const mismatches = fastPathVersionMismatches().map(describeMismatch);
    if (mismatches.length > 0) return { parts: FAST_PATH_OFF, mismatches };
    return { parts: await runProbe().catch(() => FAST_PATH_OFF), mismatches };
  })();
  return probed;
}

async function runProbe(): Promise<FastPathParts> {
  const http = createServer();
  const io = new Server(http, { serveClient: false, transports: ['websocket'] });
  const parts: FastPathParts = { ...FAST_PATH_OFF };
  const connected = new Promise<Socket>((resolve) => io.once('connection', resolve));
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const client = connectClient(`http://127.0.0.1:${(http.address() as AddressInfo).port}`, {
    transports: ['websocket'],
    reconnection: false,
    forceNew: true,
  });
  try {
    const socket = await orAfter(connected, PROBE_TIMEOUT_MS, undefined);
    if (!socket || !attempt(() => supportsDirectWrite(socket))) return parts;
    const acked = new Promise<number>((resolve) => {
      attempt(() => readAcksDirectly(socket, (id) => {
        resolve(id);
        return true;
      }));
    });
    const gotEvent = new Promise<void>((resolve) => client.on('probe', (_payload: unknown, ack?: () => void) => {
      ack?.();
      resolve();
    }));
    const gotGroup = new Promise<void>((resolve) => client.on('probe-group', () => resolve()));
    const id = nextAckId(socket);
    if (!attempt(() => {
      writeEvent(socket, 'probe', { probe: true }, id);
      return true;
    })) return parts;
    parts.eventWriter = (await orAfter(gotEvent.then(() => true), PROBE_TIMEOUT_MS, false));
    parts.ackReader = parts.eventWriter && (await orAfter(acked, PROBE_TIMEOUT_MS, -1)) === id;
    if (attempt(() => writeSocketIoPacketsDirectly(socket))) {
      await socket.join('probe');
      io.to('probe').emit('probe-group', { probe: true });
      parts.groupWriter = await orAfter(gotGroup.then(() => true), PROBE_TIMEOUT_MS, false);
    }
    return parts;
  } finally {
    client.close();
    await new Promise<void>((resolve) => io.close(() => resolve()));
  }
}

/** The part's own check; a throw (internals not as expected) counts as no. */
function attempt(check: () => boolean): boolean {
  try {
    return check();
  } catch {
    return false;
  }
}
