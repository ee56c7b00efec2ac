import type { Options, PeerName } from './lib/options.js';
import { sessionId } from './lib/payload.js';
import type { TargetResult } from './lib/results.js';
import { backlogScenario, halfRateWarmupS, type TargetPlan } from './lib/runner.js';
import { consumesFromQueue } from './lib/systems.js';
import {
  startDirect, startEmitter, startOriginal, startPushCenter, startRabbitOnly, type SystemContext, type SystemSpec,
} from './lib/systems.js';

/**
 * The scenarios of issue 5, each a list of targets: push-center first, then the peers that make sense
 * for it, all with the same clients and the same payloads.
 * - reliable: session messages, client-acked (peers: direct with acks, RabbitMQ alone, emitter, original)
 * - volatile: the same, volatile (peers: direct volatile, emitter volatile)
 * - group: one group holding every client; fan-out deliveries per second
 * - two-nodes: two push-center nodes, clients split, so about half of the messages are forwarded
 * - overload: twice the reliable capacity for the overload duration, then drain and count losses
 * - noisy: one session flooded with a burst while the others get a steady rate (bench/lib/noisy.ts)
 */
export function planTargets(options: Options, ctx: SystemContext, results: TargetResult[]): TargetPlan[] {
  const plans: TargetPlan[] = [];
  const { clients } = options;
  const has = (peer: PeerName) => options.peers.includes(peer);
  for (const scenario of options.scenarios) {
    const target = scenario === 'group' ? 'group' : 'session';
    const reliable = scenario !== 'volatile';
    const fanout = target === 'group' ? clients : 1;
    const spec = (key: string): SystemSpec => ({ key: `${scenario}-${key}`, target, reliable, sessions: clients });
    const add = (kind: TargetPlan['kind'], key: string, start: (s: SystemSpec) => TargetPlan['start'], withClients = true) => {
      const s = spec(key);
      plans.push({ scenario, kind, spec: s, clients: withClients ? clients : 0, fanout: withClients ? fanout : 1, start: start(s) });
    };
    switch (scenario) {
      case 'reliable':
      case 'volatile':
      case 'group':
        add('push-center', 'pc', (s) => () => startPushCenter(ctx, s, 1));
        if (has('direct')) add('direct', 'direct', (s) => () => startDirect(ctx, s));
        // The broker's ceiling does not depend on the delivery mode: measured once.
        if (has('rabbitmq') && scenario === 'reliable') add('rabbitmq', 'rabbitmq', (s) => () => startRabbitOnly(ctx, s), false);
        if (has('emitter')) add('emitter', 'emitter', (s) => () => startEmitter(ctx, s));
        // The original design never waits for clients, so its volatile run would repeat its reliable one:
        // left out to keep the full run near ten minutes.
        if (has('original') && scenario !== 'volatile') add('original', 'original', (s) => () => startOriginal(ctx, s));
        break;
      case 'two-nodes':
        add('two-nodes', 'pc2', (s) => () => startPushCenter(ctx, s, 2));
        break;
      case 'overload': {
        const s = spec('pc');
        plans.push({
          scenario, kind: 'push-center', spec: s, clients, fanout: 1, start: () => startPushCenter(ctx, s, 1),
          capacity: () => capacityFrom(results),
        });
        break;
      }
      case 'noisy': {
        // Sessions s0 … s<others-1> get the steady rate; the flooded one is the client after them.
        const s: SystemSpec = { ...spec('pc'), sessions: options.others };
        plans.push({
          scenario, kind: 'push-center', spec: s, clients: options.others + 1, fanout: 1, start: () => startPushCenter(ctx, s, 1),
          noisy: { flood: options.flood, rate: options.steadyRate, floodSession: sessionId(options.others), others: options.others },
        });
        break;
      }
    }
  }
  return plans;
}

/** The reliable capacity measured earlier in this run, if any. */
function capacityFrom(results: TargetResult[]): { value: number; source: string } | undefined {
  const reliable = results.find((r) => r.scenario === 'reliable' && r.kind === 'push-center' && !r.error);
  const max = reliable?.phases.find((phase) => phase.name === 'max');
  return max && max.deliveredPerS > 0 ? { value: max.deliveredPerS, source: 'the reliable scenario of this run' } : undefined;
}

/**
 * A rough wall-time estimate, printed before the run starts. Connecting is bound by the CPU each
 * connection costs the client and the server; 700 a second is what a two-core machine manages.
 */
export function estimateSeconds(options: Options, plans: TargetPlan[]): number {
  const setup = (clients: number) => 3 + (clients > 0 ? 1 + clients / 700 + 2 : 0) + 1;
  let total = 5;
  for (const plan of plans) {
    total += setup(plan.clients);
    if (plan.scenario === 'overload') {
      const probe = plan.capacity?.() || plans.some((p) => p.scenario === 'reliable' && p.kind === 'push-center')
        ? 0 : options.warmupS + Math.min(options.durationS, 10) + 2;
      // The backlog of twice the capacity drains faster than it grew (the publisher no longer competes).
      total += probe + 1.75 * options.overloadDurationS + 5;
    } else if (plan.noisy) {
      // Baseline and after windows; the burst arrives at a few thousand messages a second.
      total += options.warmupS + 2 * options.durationS + plan.noisy.flood / 3000 + 5;
    } else {
      total += options.warmupS + options.durationS + 1 + halfRateWarmupS(options) + options.halfDurationS + 1;
      // The backlog phase: filling the queue (at most 12 s), the window, the rest of the queue drained.
      if (options.backlog && consumesFromQueue(plan.kind) && backlogScenario(plan.scenario)) {
        total += 12 + options.warmupS + options.durationS + 10;
      }
    }
  }
  return Math.round(total);
}
