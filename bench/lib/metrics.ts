import { readdirSync, readFileSync } from 'node:fs';

/** Reading push-center's `/metrics` and the CPU time of processes from /proc. */

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export function parsePrometheus(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][\w:]*)(?:\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!match) continue;
    const labels: Record<string, string> = {};
    for (const pair of (match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[pair[1]!] = pair[2]!;
    samples.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return samples;
}

/** The push-center figures the bench follows, summed over the node's series. */
export interface NodeFigures {
  paused: number;
  inflight: number;
  connected: number;
  rssBytes: number;
  /** `target:mode:outcome` → count. */
  deliveries: Record<string, number>;
  /** op → count. */
  inbox: Record<string, number>;
  /** reason → count. */
  backpressure: Record<string, number>;
  /** reason → messages dead-lettered (`pushcenter_dead_letters_total`; absent on older servers). */
  deadLetters: Record<string, number>;
  received: number;
  invalid: number;
  /** `pushcenter_event_loop_busy_seconds_total`, summed over the nodes. */
  loopBusySeconds: number;
  /** Time spent in garbage collection (`nodejs_gc_duration_seconds_sum`, every kind). */
  gcSeconds: number;
  /** Collections that took longer than 100 ms (from the histogram's 0.1 s bucket). */
  gcOver100ms: number;
  /** Longest event-loop delay since the previous scrape (`nodejs_eventloop_lag_max_seconds`). */
  loopLagMaxSeconds: number;
}

export function nodeFigures(samples: Sample[]): NodeFigures {
  const figures: NodeFigures = {
    paused: 0, inflight: 0, connected: 0, rssBytes: 0, deliveries: {}, inbox: {}, backpressure: {}, deadLetters: {}, received: 0, invalid: 0,
    loopBusySeconds: 0, gcSeconds: 0, gcOver100ms: 0, loopLagMaxSeconds: 0,
  };
  for (const { name, labels, value } of samples) {
    switch (name) {
      case 'pushcenter_consumer_paused': figures.paused = value; break;
      case 'pushcenter_inflight_messages': figures.inflight = value; break;
      case 'pushcenter_connected_sockets': figures.connected = value; break;
      case 'process_resident_memory_bytes': figures.rssBytes = value; break;
      case 'pushcenter_messages_received_total': figures.received += value; break;
      case 'pushcenter_messages_invalid_total': figures.invalid += value; break;
      case 'pushcenter_event_loop_busy_seconds_total': figures.loopBusySeconds += value; break;
      case 'nodejs_gc_duration_seconds_sum': figures.gcSeconds += value; break;
      case 'nodejs_gc_duration_seconds_count': figures.gcOver100ms += value; break;
      case 'nodejs_gc_duration_seconds_bucket': if (labels.le === '0.1') figures.gcOver100ms -= value; break;
      case 'nodejs_eventloop_lag_max_seconds': figures.loopLagMaxSeconds = Math.max(figures.loopLagMaxSeconds, value); break;
      case 'pushcenter_deliveries_total': add(figures.deliveries, `${labels.target}:${labels.mode}:${labels.outcome}`, value); break;
      case 'pushcenter_inbox_total': add(figures.inbox, labels.op ?? '', value); break;
      case 'pushcenter_backpressure_events_total': add(figures.backpressure, labels.reason ?? '', value); break;
      case 'pushcenter_dead_letters_total': add(figures.deadLetters, labels.reason ?? '', value); break;
    }
  }
  return figures;
}

export async function scrapeNode(url: string): Promise<NodeFigures> {
  const response = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(5000) });
  return nodeFigures(parsePrometheus(await response.text()));
}

/** Sum of several nodes' figures (two nodes). */
export function sumFigures(list: NodeFigures[]): NodeFigures {
  const total = nodeFigures([]);
  for (const f of list) {
    total.paused = Math.max(total.paused, f.paused);
    total.inflight += f.inflight;
    total.connected += f.connected;
    total.rssBytes += f.rssBytes;
    total.received += f.received;
    total.invalid += f.invalid;
    total.loopBusySeconds += f.loopBusySeconds;
    total.gcSeconds += f.gcSeconds;
    total.gcOver100ms += f.gcOver100ms;
    total.loopLagMaxSeconds = Math.max(total.loopLagMaxSeconds, f.loopLagMaxSeconds);
    for (const [key, value] of Object.entries(f.deliveries)) add(total.deliveries, key, value);
    for (const [key, value] of Object.entries(f.inbox)) add(total.inbox, key, value);
    for (const [key, value] of Object.entries(f.backpressure)) add(total.backpressure, key, value);
    for (const [key, value] of Object.entries(f.deadLetters)) add(total.deadLetters, key, value);
  }
  return total;
}

/** `after − before` for every counter of a record. */
export function delta(after: Record<string, number>, before: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [key, value] of Object.entries(after)) {
    const d = value - (before[key] ?? 0);
    if (d !== 0) out[key] = d;
  }
  return out;
}

/** Sum of the entries whose `target:mode:outcome` key matches. */
export function outcomes(deliveries: Record<string, number>, match: { target?: string; outcome?: string; mode?: string }): number {
  let sum = 0;
  for (const [key, value] of Object.entries(deliveries)) {
    const [target, mode, outcome] = key.split(':');
    if (match.target && match.target !== target) continue;
    if (match.mode && match.mode !== mode) continue;
    if (match.outcome && match.outcome !== outcome) continue;
    sum += value;
  }
  return sum;
}

function add(record: Record<string, number>, key: string, value: number): void {
  record[key] = (record[key] ?? 0) + value;
}

const TICKS_PER_SECOND = 100;

/** CPU seconds (user + system) a process has used so far; undefined once it is gone. */
export function cpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces) start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
  } catch {
    return undefined;
  }
}

/**
 * CPU seconds the hypervisor has taken from this machine so far while it had work to run (the `steal`
 * column of /proc/stat's `cpu` line, all cores); undefined where the kernel does not report it.
 */
export function stolenSeconds(): number | undefined {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
    const fields = line.trim().split(/\s+/);
    if (fields[0] !== 'cpu' || fields.length < 9) return undefined;
    return Number(fields[8]) / TICKS_PER_SECOND;
  } catch {
    return undefined;
  }
}

/**
 * Pids of the local RabbitMQ broker (the `beam.smp` that booted `rabbit`, not a passing rabbitmqctl) and
 * of redis-server, for their CPU share.
 */
export function servicePids(): { rabbitmq: number[]; redis: number[] } {
  const found = { rabbitmq: [] as number[], redis: [] as number[] };
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const comm = readFileSync(`/proc/${entry}/comm`, 'utf8').trim();
      if (comm === 'redis-server') found.redis.push(Number(entry));
      if (comm === 'beam.smp' && readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes('rabbit')) found.rabbitmq.push(Number(entry));
    } catch {
      // Exited meanwhile.
    }
  }
  return found;
}
