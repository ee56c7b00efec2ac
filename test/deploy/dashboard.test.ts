import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { PROMQL_FUNCTIONS, isExported, pushCenterFamilies, readQuery, readVariableQuery, type QueryNames } from './promql.js';

const DASHBOARD = fileURLToPath(new URL('../../grafana/dashboards/push-center.json', import.meta.url));

interface Target {
  expr?: string;
  refId?: string;
  datasource?: { type?: string; uid?: string };
}

interface Panel {
  id?: number;
  type: string;
  title?: string;
  datasource?: { type?: string; uid?: string };
  gridPos?: { h: number; w: number; x: number; y: number };
  targets?: Target[];
  panels?: Panel[];
}

interface Dashboard {
  uid: string;
  schemaVersion: number;
  panels: Panel[];
  templating: { list: Array<{ name: string; type: string; query: string | { query: string }; datasource?: { uid?: string } }> };
}

interface Query extends QueryNames {
  panel: Panel;
  expr: string;
}

function loadDashboard(): Dashboard {
  return JSON.parse(readFileSync(DASHBOARD, 'utf8')) as Dashboard;
}

/** Every panel, rows' nested panels included. */
function allPanels(dashboard: Dashboard): Panel[] {
  return dashboard.panels.flatMap((panel) => [panel, ...(panel.panels ?? [])]);
}

function queries(dashboard: Dashboard): Query[] {
  return allPanels(dashboard).flatMap((panel) =>
    (panel.targets ?? []).map((target) => ({ panel, expr: target.expr ?? '', ...readQuery(target.expr ?? '') })),
  );
}

function variableQueries(dashboard: Dashboard): QueryNames[] {
  return dashboard.templating.list
    .filter((variable) => variable.type === 'query')
    .map((variable) => readVariableQuery(typeof variable.query === 'string' ? variable.query : variable.query.query));
}

/** Each metric name the dashboard queries that push-center does not export, with where it is used. */
function unknownMetrics(dashboard: Dashboard, families: Map<string, string>): string[] {
  const unknown: string[] = [];
  for (const query of queries(dashboard)) {
    for (const name of query.metrics) {
      if (!isExported(name, families)) unknown.push(`${name} (panel "${query.panel.title}")`);
    }
  }
  for (const query of variableQueries(dashboard)) {
    for (const name of query.metrics) if (!isExported(name, families)) unknown.push(`${name} (a template variable)`);
  }
  return unknown;
}

describe('reading PromQL', () => {
  it('finds the metric names and leaves out functions, labels, strings, durations and variables', () => {
    const read = readQuery(
      'histogram_quantile(0.99, sum by (le, mode) (rate(pushcenter_delivery_latency_seconds_bucket' +
        '{instance=~"$node", mode="reliable"}[$__rate_interval] offset 1m)))' +
        ' / on (instance) group_left sum without (op) (increase(pushcenter_inbox_total[5m:1m])) > bool 1e3' +
        ' or vector(0) and pushcenter_sessions unless absent(nodejs_eventloop_lag_p99_seconds)',
    );
    expect(read.metrics.sort()).toEqual([
      'nodejs_eventloop_lag_p99_seconds',
      'pushcenter_delivery_latency_seconds_bucket',
      'pushcenter_inbox_total',
      'pushcenter_sessions',
    ]);
    expect(read.functions.sort()).toEqual(['absent', 'histogram_quantile', 'increase', 'rate', 'sum', 'vector']);
    expect(read.groupBy.sort()).toEqual(['le', 'mode']);
  });

  it('reads the selector of a label_values() template variable, not the label', () => {
    expect(readVariableQuery('label_values(pushcenter_connected_sockets, instance)').metrics).toEqual([
      'pushcenter_connected_sockets',
    ]);
    expect(readVariableQuery('label_values(up{job="x"}, instance)').metrics).toEqual(['up']);
  });

  it('accepts the _bucket, _sum and _count series of a histogram, and nothing else beside a family', () => {
    const families = new Map([
      ['pushcenter_delivery_latency_seconds', 'histogram'],
      ['pushcenter_sessions', 'gauge'],
    ]);
    expect(isExported('pushcenter_delivery_latency_seconds_bucket', families)).toBe(true);
    expect(isExported('pushcenter_delivery_latency_seconds_count', families)).toBe(true);
    expect(isExported('pushcenter_sessions', families)).toBe(true);
    expect(isExported('pushcenter_sessions_count', families)).toBe(false);
    expect(isExported('pushcenter_session', families)).toBe(false);
  });
});

describe('the Grafana dashboard (grafana/dashboards/push-center.json)', () => {
  let families: Map<string, string>;

  beforeAll(async () => {
    families = await pushCenterFamilies();
  });

  it('queries only metrics that push-center exports', () => {
    const dashboard = loadDashboard();
    expect(queries(dashboard).length).toBeGreaterThan(10);
    expect(unknownMetrics(dashboard, families)).toEqual([]);
  });

  it('fails the check above for a misspelled metric name', () => {
    const misspelled = JSON.parse(
      readFileSync(DASHBOARD, 'utf8').replace('pushcenter_sessions{', 'pushcenter_sesions{'),
    ) as Dashboard;
    expect(unknownMetrics(misspelled, families)).toEqual([
      expect.stringContaining('pushcenter_sesions'),
    ]);
  });

  it('calls only PromQL functions', () => {
    const unknown = queries(loadDashboard()).flatMap((query) =>
      query.functions.filter((name) => !PROMQL_FUNCTIONS.has(name)).map((name) => `${name} in "${query.expr}"`),
    );
    expect(unknown).toEqual([]);
  });

  it('gives every panel a title, and every query panel the provisioned Prometheus datasource', () => {
    const dashboard = loadDashboard();
    for (const panel of allPanels(dashboard)) {
      expect(panel.title, `panel ${panel.id}`).toBeTruthy();
      if (panel.type === 'row') continue;
      expect(panel.datasource?.uid, `panel "${panel.title}"`).toBe('prometheus');
      expect(panel.targets?.length, `panel "${panel.title}" has no query`).toBeGreaterThan(0);
      for (const target of panel.targets ?? []) {
        expect(target.datasource?.uid ?? 'prometheus', `panel "${panel.title}" ${target.refId}`).toBe('prometheus');
        expect(target.expr?.trim(), `panel "${panel.title}" ${target.refId}`).toBeTruthy();
      }
    }
    for (const variable of dashboard.templating.list) expect(variable.datasource?.uid).toBe('prometheus');
  });

  it('filters every push-center query by the node variable', () => {
    const unfiltered = queries(loadDashboard())
      .filter((query) => !/instance=~"\$node"/.test(query.expr))
      .map((query) => `"${query.panel.title}": ${query.expr}`);
    expect(unfiltered).toEqual([]);
  });

  it('has a node variable listing the instances of pushcenter_connected_sockets', () => {
    const node = loadDashboard().templating.list.find((variable) => variable.name === 'node');
    expect(node?.type).toBe('query');
    const query = typeof node?.query === 'string' ? node.query : node?.query.query;
    expect(query?.replace(/\s+/g, '')).toBe('label_values(pushcenter_connected_sockets,instance)');
  });

  it('lays the panels out on the 24-column grid with unique ids', () => {
    const panels = allPanels(loadDashboard());
    const ids = panels.map((panel) => panel.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const panel of panels) {
      expect(panel.gridPos, `panel "${panel.title}"`).toBeDefined();
      expect(panel.gridPos!.x + panel.gridPos!.w, `panel "${panel.title}"`).toBeLessThanOrEqual(24);
    }
    expect(loadDashboard().schemaVersion).toBeGreaterThanOrEqual(36);
  });

  // What an operator looks for, as metric + grouping (+ a shape of the expression where it matters).
  const wanted: Array<{ what: string; metric: string; by?: string[]; expr?: RegExp; panelType?: string }> = [
    { what: 'connected sockets per node', metric: 'pushcenter_connected_sockets', by: ['instance'] },
    { what: 'sessions per node', metric: 'pushcenter_sessions', by: ['instance'] },
    { what: 'received rate by source', metric: 'pushcenter_messages_received_total', by: ['source'], expr: /rate\(/ },
    { what: 'invalid rate by reason', metric: 'pushcenter_messages_invalid_total', by: ['reason'], expr: /rate\(/ },
    {
      what: 'deliveries rate by mode and target',
      metric: 'pushcenter_deliveries_total',
      by: ['mode', 'target'],
      expr: /rate\(.*outcome="delivered"/,
    },
    {
      what: 'dropped / expired / failed rates by outcome, mode and target',
      metric: 'pushcenter_deliveries_total',
      by: ['outcome', 'mode', 'target'],
      expr: /rate\(.*outcome=~"(?=[^"]*dropped)(?=[^"]*expired)(?=[^"]*failed)/,
    },
    {
      what: 'delivery latency p50 by mode',
      metric: 'pushcenter_delivery_latency_seconds_bucket',
      by: ['le', 'mode'],
      expr: /histogram_quantile\(0\.5,/,
    },
    {
      what: 'delivery latency p99 by mode',
      metric: 'pushcenter_delivery_latency_seconds_bucket',
      by: ['le', 'mode'],
      expr: /histogram_quantile\(0\.99,/,
    },
    { what: 'inflight messages', metric: 'pushcenter_inflight_messages' },
    { what: 'consumer paused', metric: 'pushcenter_consumer_paused' },
    { what: 'backpressure events by reason', metric: 'pushcenter_backpressure_events_total', by: ['reason'] },
    { what: 'inbox activity by op', metric: 'pushcenter_inbox_total', by: ['op'] },
    { what: 'dead letters by reason', metric: 'pushcenter_dead_letters_total', by: ['reason'], expr: /rate\(/ },
    { what: 'gap notices', metric: 'pushcenter_gap_notices_total', expr: /rate\(/ },
    { what: 'duplicates suppressed', metric: 'pushcenter_duplicates_suppressed_total', expr: /rate\(/ },
    { what: 'dependency status', metric: 'pushcenter_dependency_up', by: ['dependency'], panelType: 'stat' },
    { what: 'event-loop lag', metric: 'nodejs_eventloop_lag_p99_seconds' },
    { what: 'process RSS', metric: 'process_resident_memory_bytes' },
    { what: 'socket refusals', metric: 'pushcenter_socket_refusals_total', by: ['reason'] },
  ];

  it.each(wanted)('shows $what', ({ metric, by = [], expr, panelType }) => {
    const found = queries(loadDashboard()).filter(
      (query) =>
        query.metrics.includes(metric) &&
        by.every((label) => query.groupBy.includes(label)) &&
        (expr === undefined || expr.test(query.expr)) &&
        (panelType === undefined || query.panel.type === panelType),
    );
    expect(found.map((query) => query.panel.title)).not.toEqual([]);
  });
});
