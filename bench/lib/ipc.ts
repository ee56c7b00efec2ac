/** The messages the bench parent and its child processes (client workers, peers) exchange over IPC. */

/** Delivery counters of one child, sent every 100 ms; counters are cumulative, the histogram is a delta. */
export interface StatsMessage {
  type: 'stats';
  /** Envelopes received, duplicates included (group: one per member). */
  received: number;
  /** Distinct (client, message) pairs received. */
  unique: number;
  /** Ack callbacks called (reliable session messages). */
  acked: number;
  /** Sockets that disconnected without being asked to. */
  disconnects: number;
  /** Latency histogram delta since the previous message: [bucket, count, ...]. */
  hist: number[];
  /** Largest latency since the previous message (ms). */
  max: number;
}

/** `lean`: the benchmark's own minimal socket.io client (`lean-socket.ts`); `socket.io`: socket.io-client. */
export type ClientKind = 'lean' | 'socket.io';

/** Parent → client worker. */
export type WorkerCommand =
  | {
    type: 'connect';
    client: ClientKind;
    url: string;
    sessionIds: string[];
    groups: string[];
    /** Connections (handshake + register) in flight at once in this worker. */
    concurrency: number;
    timeoutMs: number;
    /**
     * Sessions whose every arrival is recorded and reported as `arrivals` instead of being counted in
     * `stats` (the noisy scenario's flooded session).
     */
    traced: string[];
  }
  | { type: 'reregister' }
  | { type: 'heartbeat' }
  | { type: 'stop' };

/** Client worker → parent. */
export type WorkerReport =
  | StatsMessage
  | { type: 'connecting'; connected: number; failed: number }
  | { type: 'ready'; connected: number; failed: number; errors: string[]; ms: number }
  | { type: 'reregistered'; ok: number; failed: number }
  /** A traced session's arrivals since the previous report: flat [sequence number, received at (ms), ...]. */
  | { type: 'arrivals'; sessionId: string; records: number[] }
  | { type: 'stopped' };

/** How a generating peer (the direct socket.io server) runs a phase. */
export interface RunCommand {
  type: 'run';
  target: 'session' | 'group';
  reliable: boolean;
  /** `max`: as fast as it can within its window; `rate`: `rate` messages per second. */
  mode: 'max' | 'rate';
  rate: number;
  /** Sessions are `s0` … `s<sessions-1>`; message `seq` goes to `s<seq % sessions>`. */
  sessions: number;
  seqStart: number;
  /** Reliable session messages: un-acked emits at most. */
  window: number;
}

/** Parent → peer. */
export type PeerCommand =
  | RunCommand
  /** Mode `max`: send no more than this many messages in total (the run's backlog bound). */
  | { type: 'limit'; maxSent: number }
  | { type: 'halt' }
  | { type: 'heartbeat' }
  | { type: 'stop' };

/** Peer → parent. */
export type PeerReport =
  | StatsMessage
  | { type: 'listening'; port: number }
  | { type: 'failed'; error: string }
  /** Messages the peer sent (generating peers) or processed from Redis (adapter server), cumulative. */
  | { type: 'progress'; sent: number; processed: number; pending: number; skipped: number }
  | { type: 'halted'; sent: number; pending: number; skipped: number };

/** A child exits when the parent goes away or stops sending heartbeats for this long. */
export const HEARTBEAT_TIMEOUT_MS = 30_000;
export const STATS_INTERVAL_MS = 100;
