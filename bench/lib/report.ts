import { counts } from './noisy.js';
import type { NoisyWindow, PhaseResult, RunResults, ScenarioName, TargetResult } from './results.js';

/** The results as tables: printed at the end, and the markdown file for docs/BENCHMARKS.md. */

export const SCENARIO_TITLES: Record<ScenarioName, string> = {
  reliable: 'Reliable session messages, client-acked',
  volatile: 'Volatile session messages',
  group: 'One group of every client (fan-out)',
  'two-nodes': 'Two push-center nodes, clients split (about half of the messages forwarded)',
  overload: 'Overload: twice the reliable capacity, then drain',
  noisy: 'Noisy neighbour: one session flooded with a burst, the others at a steady rate',
};


const ISSUE_TARGETS = {
  reliableBar: 15_000,
  reliableGoal: 20_000,
  volatileGoal: 25_000,
  p99AtHalfMs: 50,
  kbPerConnection: 25,
  overloadRssMB: 512,
  overloadRatio: 0.9,
};

export function markdown(results: RunResults): string {
  const lines: string[] = [];
  const kind = results.settings.quick ? ' (--quick smoke run)' : '';
  lines.push(`### Run ${results.startedAt.slice(0, 16).replace('T', ' ')} UTC${kind}${results.aborted ? ' (aborted)' : ''}`, '');
  lines.push(...facts(results).map((fact) => `- ${fact}`), '');
  for (const scenario of scenariosOf(results)) {
    lines.push(`#### ${SCENARIO_TITLES[scenario]}`, '');
    lines.push(...scenarioTable(results, scenario), '');
    for (const note of scenarioNotes(results, scenario)) lines.push(`- ${note}`);
    if (scenarioNotes(results, scenario).length > 0) lines.push('');
    const budget = cpuTable(results, scenario);
    if (budget.length > 0) lines.push(`${BUDGET_TITLE}:`, '', ...budget, '');
  }
  const checks = targetChecks(results);
  if (checks.length > 0) {
    lines.push(`#### Against the targets of issue 5${results.settings.quick || results.settings.clients < 10_000
      ? ` (this run had ${results.settings.clients} clients: the targets are for 10,000)` : ''}`, '');
    lines.push(...checks.map((check) => `- ${check}`), '');
  }
  return `${lines.join('\n')}\n`;
}

/** The terminal summary: the same tables, without the facts block. */
export function terminalSummary(results: RunResults): string {
  const lines: string[] = [''];
  for (const scenario of scenariosOf(results)) {
    lines.push(`${SCENARIO_TITLES[scenario]}`);
    lines.push(...scenarioTable(results, scenario));
    for (const note of scenarioNotes(results, scenario)) lines.push(`  ${note}`);
    const budget = cpuTable(results, scenario);
    if (budget.length > 0) lines.push(`${BUDGET_TITLE}:`, ...budget);
    lines.push('');
  }
  const checks = targetChecks(results);
  if (checks.length > 0) lines.push('Against the targets of issue 5:', ...checks.map((check) => `  ${check}`), '');
  return lines.join('\n');
}

function facts(r: RunResults): string[] {
  const m = r.machine;
  const s = r.settings;
  const env = Object.entries(s.serverEnv).map(([k, v]) => `${k}=${v}`).join(' ');
  return [
    `Command: \`${r.command}\``,
    `Commit: ${r.git.commit.slice(0, 12)}${r.git.dirty ? ' with uncommitted changes' : ''}`,
    `Machine: ${m.cpuModel}, ${m.cores} cores, ${m.memoryGiB} GiB, ${m.os}; Node.js ${r.versions.node}, ` +
      `RabbitMQ ${r.versions.rabbitmq}, Redis ${r.versions.redis}; everything (servers, broker, Redis, clients) on this one machine`,
    `Load average at start ${m.loadAverageAtStart.join(' / ')}, at end ${m.loadAverageAtEnd.join(' / ')}`,
    `Settings: ${s.clients.toLocaleString('en-US')} websocket clients (${s.client ?? 'socket.io-client'}) in ${s.workers} processes, ${s.payloadBytes}-byte payloads` +
      `${s.persistent ? ' (persistent)' : ''}, prefetch ${s.prefetch}; per system ${s.durationS} s at the maximum rate and ` +
      `${s.halfRateDurationS} s at half of it; overload ${s.overloadDurationS} s; push-center from ${s.server}${env ? ` with ${env}` : ''}` +
      (s.loadSched === 'SCHED_BATCH' ? '; load generator (client workers, publisher) under SCHED_BATCH' : '') +
      (s.serverSession === 'own' ? '; each server in a session (autogroup) of its own'
        : '; servers in the bench\'s session (autogroup)') +
      (s.noisy ? `; noisy: a burst of ${num(s.noisy.flood)} reliable messages to one session, ${num(s.noisy.others)} other sessions ` +
        `at ${num(s.noisy.steadyRate)} msgs/s in total` : ''),
  ];
}

function scenariosOf(results: RunResults): ScenarioName[] {
  return [...new Set(results.targets.map((t) => t.scenario))];
}

function phase(target: TargetResult, name: string): PhaseResult | undefined {
  return target.phases.find((p) => p.name === name);
}

function scenarioTable(results: RunResults, scenario: ScenarioName): string[] {
  const targets = results.targets.filter((t) => t.scenario === scenario);
  if (scenario === 'overload') return overloadTable(targets);
  if (scenario === 'noisy') return noisyTable(targets);
  const group = scenario === 'group';
  // Two nodes are compared with one node (the reliable scenario), the others with push-center in their table.
  const reference = scenario === 'two-nodes'
    ? results.targets.find((t) => t.scenario === 'reliable' && t.kind === 'push-center' && !t.error)
    : targets.find((t) => t.kind === 'push-center');
  const referenceRate = reference ? phase(reference, 'max')?.deliveredPerS : undefined;
  const fullQueue = scenario === 'reliable' || scenario === 'volatile';
  const header = [
    'system',
    group ? 'msgs/s (each to all)' : 'msgs/s',
    ...(group ? ['deliveries/s'] : []),
    ...(fullQueue ? ['msgs/s from a full queue'] : []),
    scenario === 'two-nodes' ? '× one node' : '× push-center',
    'latency at half rate p50 / p99 / max (ms)',
    'p99 at max (ms)',
    'server RSS (MB)',
    'KB per idle conn',
    'server CPU %',
    'loop busy %',
    ...(scenario === 'two-nodes' ? ['forwarded'] : []),
    'paused (s)',
    'not delivered / dup',
  ];
  const rows = targets.map((t) => {
    if (t.error && t.phases.length === 0) {
      return [t.system, `failed: ${firstLine(t.error)}`, ...Array(header.length - 2).fill('')];
    }
    const max = phase(t, 'max');
    const half = phase(t, 'half');
    const rate = max?.deliveredPerS;
    const rel = rate !== undefined && referenceRate ? (rate / referenceRate).toFixed(2) : '';
    const lat = half?.latency;
    const forwarded = max?.pushCenter ? `${num(max.pushCenter.forwarded)} (${pct(max.pushCenter.forwarded, max.published)})` : '';
    return [
      t.system + (t.error ? ' (failed)' : ''),
      rate === undefined ? '' : group ? rate.toFixed(1) : num(rate),
      ...(group ? [max ? num(max.deliveriesPerS) : ''] : []),
      ...(fullQueue ? [backlogCell(phase(t, 'backlog'))] : []),
      rel,
      lat ? `${ms(lat.p50)} / ${ms(lat.p99)} / ${ms(lat.max)}` : '',
      max ? ms(max.latency.p99) : '',
      max?.rssMaxMB !== undefined ? num(max.rssMaxMB) : '',
      t.idle ? t.idle.perConnectionKB.toFixed(1) : '',
      max?.cpu ? String(max.cpu.server) : '',
      max?.loopBusy !== undefined ? String(Math.round(max.loopBusy * 100)) : '',
      ...(scenario === 'two-nodes' ? [forwarded] : []),
      max?.pausedS !== undefined ? max.pausedS.toFixed(1) : '',
      max ? `${notDelivered(t)} / ${num(sumPhases(t, 'duplicates'))}` : '',
    ];
  });
  return table(header, rows);
}

/** A backlog phase's rate, and when its queue ran dry within the window. */
function backlogCell(backlog: PhaseResult | undefined): string {
  if (!backlog) return '';
  const dry = backlog.backlog?.ranOutAfterS;
  return num(backlog.deliveredPerS) + (dry !== undefined ? ` (dry after ${dry} s)` : '');
}

const BUDGET_TITLE = 'CPU at the maximum rate, per process: % of one core (100 per core) · µs of CPU per delivered message; ' +
  'stolen: CPU the hypervisor took from this machine while it had work (not in the other columns)';

/**
 * Where the machine's CPU went at the maximum rate: each party's share and its cost per delivered
 * message. With everything on one machine, the sum of the costs bounds the rate: 1 s × cores ÷ Σ µs.
 */
export function cpuTable(results: RunResults, scenario: ScenarioName): string[] {
  if (scenario !== 'reliable' && scenario !== 'volatile' && scenario !== 'two-nodes') return [];
  const rows: string[][] = [];
  for (const t of results.targets.filter((x) => x.scenario === scenario)) {
    for (const [name, label] of [['max', t.system], ['backlog', `${t.system}, full queue`]] as const) {
      const measured = phase(t, name);
      if (!measured?.cpu || !(measured.deliveredPerS > 0)) continue;
      const c = measured.cpu;
      const servers = c.server + c.helpers;
      const total = servers + c.clients + c.rabbitmq + c.redis + c.bench;
      const cell = (share: number) => `${share} % · ${Math.round((share / 100) * 1e6 / measured.deliveredPerS)}`;
      rows.push([label, num(measured.deliveredPerS), cell(servers), cell(c.clients), cell(c.rabbitmq), cell(c.redis), cell(c.bench), cell(total),
        c.steal === undefined ? '' : `${c.steal} %`]);
    }
  }
  if (rows.length === 0) return [];
  return table(['system', 'msgs/s', 'system under test', 'clients', 'RabbitMQ', 'Redis', 'bench (publisher)', 'all', 'stolen by the hypervisor'], rows);
}

function overloadTable(targets: TargetResult[]): string[] {
  const header = ['system', 'capacity msgs/s', 'offered', 'published/s', 'delivered/s (share of capacity)', 'RSS max (MB)',
    'paused (s)', 'backpressure events', 'published', 'delivered', 'in inboxes', 'lost', 'drain (s)', 'node up'];
  const rows = targets.map((t) => {
    const o = t.overload;
    if (!o) return [t.system, `failed: ${firstLine(t.error ?? 'no result')}`, ...Array(header.length - 2).fill('')];
    const events = Object.entries(o.backpressureEvents ?? {}).map(([k, v]) => `${k} ${v}`).join(', ') || '0';
    return [t.system, num(o.capacity), num(o.offeredRate), num(o.publishedPerS),
      `${num(o.deliveredPerS)} (${Math.round(o.throughputRatio * 100)} %)`, o.rssMaxMB === undefined ? '' : num(o.rssMaxMB),
      o.pausedS === undefined ? '' : o.pausedS.toFixed(1), events, num(o.published), num(o.uniqueDelivered),
      num(o.inboxRemaining), num(o.lost), o.drainS.toFixed(1), o.nodeAlive ? 'yes' : 'NO'];
  });
  return table(header, rows);
}

/** The others' latency before, during and after the flood; the flood's drain and order; everyone's losses. */
function noisyTable(targets: TargetResult[]): string[] {
  const header = ['system', 'others msgs/s before / during / after', 'others before the flood p50 / p99 / max (ms)',
    'others during the flood p50 / p99 / max (ms)', 'others after it p50 / p99 / max (ms)', 'flood received / published',
    'flood drain (s)', 'flood out of order', 'flood lost / dup', 'others lost / dup', 'server CPU % before / during / after',
    'server RSS max (MB) before / during / after'];
  const rows = targets.map((t) => {
    const n = t.noisy;
    if (!n) return [t.system, `failed: ${firstLine(t.error ?? 'no result')}`, ...Array(header.length - 2).fill('')];
    const latency = (w: NoisyWindow) => `${ms(w.latency.p50)} / ${ms(w.latency.p99)} / ${ms(w.latency.max)}`;
    const windows = [n.baseline, n.during, n.after];
    const each = (cell: (w: NoisyWindow) => string) => windows.map(cell).join(' / ');
    const f = n.flooded;
    return [
      t.system + (t.error ? ' (failed)' : ''),
      each((w) => num(w.deliveredPerS)),
      latency(n.baseline),
      latency(n.during),
      latency(n.after),
      `${num(f.unique)} / ${num(f.published)}`,
      f.drainS === undefined ? '—' : f.drainS.toFixed(1) + (f.complete ? '' : ' (incomplete)'),
      num(f.outOfOrder),
      `${num(f.lost)} / ${num(f.duplicates)}`,
      `${num(n.othersDelivery.lost)} / ${num(n.othersDelivery.duplicates)}`,
      each((w) => (w.cpu ? String(w.cpu.server) : '—')),
      each((w) => (w.rssMaxMB === undefined ? '—' : num(w.rssMaxMB))),
    ];
  });
  return table(header, rows);
}

/** How the flood went, in words: its publishing, why the wait ended, push-center's inbox. */
function noisyNotes(t: TargetResult): string[] {
  const n = t.noisy;
  if (!n) return [];
  const f = n.flooded;
  const ended = { complete: 'every message received', quiet: 'nothing more arrived for 5 s', timeout: 'timed out', aborted: 'interrupted' }[f.end];
  const inbox = n.inbox ? counts(n.inbox) || 'not used' : 'unknown';
  const deadLetters = n.deadLetters ? counts(n.deadLetters) || 'none' : 'unknown';
  return [
    `${t.system}: session ${n.floodSession} got ${num(n.flood)} messages in one burst, published in ` +
      `${f.publishS === undefined ? '— (not all confirmed)' : `${f.publishS} s`}` +
      (f.publishFailures + n.othersDelivery.publishFailures > 0
        ? ` (RabbitMQ refused ${num(f.publishFailures)} of the flood, ${num(n.othersDelivery.publishFailures)} steady)` : '') +
      `; the wait for them ended: ${ended}; ` +
      `push-center's inbox from the flood to the end: ${inbox}; dead-lettered: ${deadLetters}`,
    `${t.system}: ${num(n.others)} other sessions at ${num(n.steadyRate)} msgs/s in total (windows: ${n.baseline.seconds} s before, ` +
      `${n.during.seconds} s during the flood, ${n.after.seconds} s after it)` +
      (n.steadySkipped ? `; the publisher fell behind and skipped ${num(n.steadySkipped)} steady sends` : ''),
  ];
}

function scenarioNotes(results: RunResults, scenario: ScenarioName): string[] {
  const notes: string[] = [];
  for (const t of results.targets.filter((x) => x.scenario === scenario)) {
    if (t.error) notes.push(`${t.system}: ${firstLine(t.error)}`);
    for (const note of t.notes) notes.push(`${t.system}: ${note}`);
    notes.push(...noisyNotes(t));
    const max = phase(t, 'max');
    if (max && max.queueDepthMax !== undefined && t.kind !== 'rabbitmq' && max.queueDepthMax < 100 && max.deliveredPerS > 0 && scenario !== 'group') {
      notes.push(`${t.system}: the queue stayed nearly empty at the maximum rate (max depth ${max.queueDepthMax}): the publisher, not the system, may have been the limit`);
    }
    const disconnects = t.phases.reduce((sum, p) => sum + p.clientDisconnects, 0);
    if (disconnects > 0) notes.push(`${t.system}: ${num(disconnects)} client disconnects during the run`);
  }
  if (scenario === 'two-nodes') {
    notes.push('forwarded: messages one node handed to the other over the Redis node bus during the max phase, counted ' +
      'by listening on the bus (push-center\'s metrics count forwards of volatile messages only)');
  }
  if (scenario === 'reliable' && results.targets.some((t) => t.scenario === scenario && t.kind === 'emitter')) {
    notes.push('redis-emitter and the original design cannot wait for client acks: their "reliable" is a plain (non-volatile) emit');
  }
  return notes;
}

function targetChecks(results: RunResults): string[] {
  const checks: string[] = [];
  const pc = (scenario: ScenarioName) => results.targets.find((t) => t.scenario === scenario && t.kind === 'push-center' && !t.error);
  const reliable = pc('reliable');
  const volatile = pc('volatile');
  const mark = (ok: boolean) => (ok ? '✅' : '❌');
  // Both maximum rates are checked: with the publisher on the box, and draining a full queue (the way
  // the issue's figures for RabbitMQ consume+ack alone were measured).
  const rates = (t: TargetResult, bar: number, goal?: number) => {
    const parts: string[] = [];
    for (const [name, what] of [['max', 'with the publisher running'], ['backlog', 'from a full queue']] as const) {
      const rate = phase(t, name)?.deliveredPerS;
      if (rate === undefined) continue;
      parts.push(`${num(rate)} msgs/s ${what}: ${goal === undefined ? 'goal' : 'bar'} ${num(bar)} ${mark(rate >= bar)}` +
        (goal !== undefined ? `, goal ${num(goal)} ${mark(rate >= goal)}` : ''));
    }
    return parts.join('; ');
  };
  if (reliable) {
    checks.push(`Reliable ${rates(reliable, ISSUE_TARGETS.reliableBar, ISSUE_TARGETS.reliableGoal)}`);
    const p99 = phase(reliable, 'half')?.latency.p99;
    if (p99 !== undefined) checks.push(`Reliable p99 at half rate ${ms(p99)} ms ≤ ${ISSUE_TARGETS.p99AtHalfMs} ms ${mark(p99 <= ISSUE_TARGETS.p99AtHalfMs)}`);
    if (reliable.idle) {
      checks.push(`${reliable.idle.perConnectionKB} KB per idle connection ≤ ${ISSUE_TARGETS.kbPerConnection} KB ` +
        `${mark(reliable.idle.perConnectionKB <= ISSUE_TARGETS.kbPerConnection)}`);
    }
  }
  if (volatile) {
    checks.push(`Volatile ${rates(volatile, ISSUE_TARGETS.volatileGoal)}`);
    const p99 = phase(volatile, 'half')?.latency.p99;
    if (p99 !== undefined) checks.push(`Volatile p99 at half rate ${ms(p99)} ms ≤ ${ISSUE_TARGETS.p99AtHalfMs} ms ${mark(p99 <= ISSUE_TARGETS.p99AtHalfMs)}`);
  }
  const overload = results.targets.find((t) => t.scenario === 'overload')?.overload;
  if (overload) {
    checks.push(`Overload: RSS max ${overload.rssMaxMB} MB < ${ISSUE_TARGETS.overloadRssMB} MB ` +
      `${mark((overload.rssMaxMB ?? Infinity) < ISSUE_TARGETS.overloadRssMB)}; throughput ${Math.round(overload.throughputRatio * 100)} % ` +
      `of capacity ≥ 90 % ${mark(overload.throughputRatio >= ISSUE_TARGETS.overloadRatio)}; consumer paused and resumed ` +
      `${mark(overload.pausedAndResumed)}; ${overload.lost} reliable messages lost ${mark(overload.lost === 0)}; ` +
      `node stayed up ${mark(overload.nodeAlive)}`);
  }
  return checks;
}

/**
 * A peer that died takes its count of what it published with it, so more can have arrived than it is
 * known to have sent: that is unknown, not a negative loss.
 */
function notDelivered(t: TargetResult): string {
  const missing = sumPhases(t, 'notDelivered');
  return missing < 0 ? 'unknown' : num(missing);
}

function sumPhases(t: TargetResult, key: 'notDelivered' | 'duplicates'): number {
  return t.phases.reduce((sum, p) => sum + p[key], 0);
}

/** A markdown table with padded columns, readable in a terminal as well. */
function table(header: string[], rows: string[][]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? '').length)));
  const line = (cells: string[]) => `| ${cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join(' | ')} |`;
  return [
    line(header),
    `|${widths.map((w, i) => (i === 0 ? `:${'-'.repeat(w + 1)}` : `${'-'.repeat(w + 1)}:`)).join('|')}|`,
    ...rows.map(line),
  ];
}

function num(value: number): string {
  return Number.isFinite(value) ? Math.round(value).toLocaleString('en-US') : '—';
}

/** Whole milliseconds (the clients' clock resolution); under one: `<1`. */
function ms(value: number): string {
  if (!Number.isFinite(value)) return '—';
  return value < 1 ? '<1' : String(Math.round(value));
}

function pct(part: number, whole: number): string {
  return whole > 0 ? `${Math.round((part / whole) * 100)} %` : '—';
}

function firstLine(text: string): string {
  return text.split('\n')[0] ?? '';
}
