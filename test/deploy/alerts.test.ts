import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { PROMQL_FUNCTIONS, isExported, pushCenterFamilies, readQuery } from './promql.js';

/**
 * The alerting rules (config/alerts.yml): their shape, that they name only what push-center exports, that
 * each has its annotations and its README entry, and that the compose Prometheus loads them. Where
 * `promtool` is on the PATH it checks the rules and the configuration, and runs each alert's
 * expression over made-up series; where it is not, the test names say so and a line is printed.
 */

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const read = (path: string): string => readFileSync(join(ROOT, path), 'utf8');
const RULES = 'config/alerts.yml';

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  [key: string]: unknown;
}

const rulesFile = parse(read(RULES), { strict: true, uniqueKeys: true }) as { groups: Array<{ name: string; rules: Rule[] }> };
const rules = rulesFile.groups.flatMap((group) => group.rules);
const byName = new Map(rules.map((rule) => [rule.alert ?? rule.record ?? '', rule]));

const prometheus = parse(read('config/prometheus.yml')) as { rule_files?: string[]; scrape_configs: Array<{ job_name: string }> };
const JOB = prometheus.scrape_configs[0]!.job_name;

/** Series Prometheus itself makes for each target: a rule may use them, for push-center's job only. */
const PROMETHEUS_SERIES = new Set(['up']);

function rule(name: string): Rule {
  const found = byName.get(name);
  if (!found) throw new Error(`${RULES} has no alert ${name}`);
  return found;
}

/** Each metric a rule selects that push-center does not export, with the rule's name. */
function unknownMetrics(list: Rule[], families: Map<string, string>): string[] {
  return list.flatMap((r) => readQuery(r.expr).metrics
    .filter((name) => !isExported(name, families))
    .filter((name) => !(PROMETHEUS_SERIES.has(name) && r.expr.includes(`${name}{job="${JOB}"}`)))
    .map((name) => `${name} (${r.alert})`));
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
function anchor(heading: string): string {
  return heading.trim().toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-');
}

/** The anchors of the headings inside README's "Operating" section. */
function operatingAnchors(): Set<string> {
  const readme = read('README.md');
  const start = readme.indexOf('\n## Operating\n');
  const end = readme.indexOf('\n## ', start + 1);
  const section = readme.slice(start, end < 0 ? undefined : end);
  return new Set([...section.matchAll(/^#{2,6} (.+)$/gm)].map((match) => anchor(match[1]!)));
}

describe('config/alerts.yml', () => {
  let families: Map<string, string>;

  beforeAll(async () => {
    families = await pushCenterFamilies();
  });

  it('is a Prometheus rule file of alerting rules with unique names and valid durations', () => {
    expect(rulesFile.groups.length).toBeGreaterThan(0);
    expect(rules.length).toBeGreaterThanOrEqual(8);
    expect(byName.size).toBe(rules.length);
    for (const r of rules) {
      expect(Object.keys(r).filter((key) => !['alert', 'expr', 'for', 'keep_firing_for', 'labels', 'annotations'].includes(key)),
        `${r.alert}`).toEqual([]);
      expect(r.alert, r.expr).toMatch(/^PushCenter[A-Za-z]+$/);
      expect(typeof r.expr).toBe('string');
      if (r.for !== undefined) expect(r.for, `${r.alert}: for`).toMatch(/^\d+[smh]$/);
    }
  });

  it('selects only metrics push-center exports (and up, for its scrape job)', () => {
    expect(unknownMetrics(rules, families)).toEqual([]);
  });

  it('fails the check above for a misspelled metric, and for up of another job', () => {
    const misspelled = { ...rule('PushCenterConsumerPaused'), expr: 'pushcenter_consumer_pause == 1' };
    const otherJob = { ...rule('PushCenterNodeDown'), expr: 'up{job="node"} == 0' };
    expect(unknownMetrics([misspelled, otherJob], families)).toEqual([
      'pushcenter_consumer_pause (PushCenterConsumerPaused)',
      'up (PushCenterNodeDown)',
    ]);
  });

  it('calls only PromQL functions', () => {
    const unknown = rules.flatMap((r) => readQuery(r.expr).functions.filter((name) => !PROMQL_FUNCTIONS.has(name))
      .map((name) => `${name} in ${r.alert}`));
    expect(unknown).toEqual([]);
  });

  it('gives every alert a severity, a summary, a description and a runbook entry in README\'s Operating section', () => {
    const anchors = operatingAnchors();
    for (const r of rules) {
      expect(['critical', 'warning', 'info'], `${r.alert}: severity`).toContain(r.labels?.severity);
      expect(r.annotations?.summary?.trim(), `${r.alert}: summary`).toBeTruthy();
      expect(r.annotations?.description?.trim(), `${r.alert}: description`).toBeTruthy();
      const runbook = /^README\.md#([\w-]+)$/.exec(r.annotations?.runbook ?? '');
      expect(runbook, `${r.alert}: runbook ${r.annotations?.runbook}`).not.toBeNull();
      expect([...anchors], `${r.alert}: README has no heading for #${runbook![1]} under Operating`).toContain(runbook![1]);
      expect(runbook![1]).toBe(anchor(r.alert!));
    }
  });

  // What an operator must hear about, as metric + condition (+ severity where it depends on the case).
  const wanted: Array<{ what: string; alert: string; metric: string; expr: RegExp; for?: string; severity?: string }> = [
    { what: 'a node paused for 5 minutes', alert: 'PushCenterConsumerPaused', metric: 'pushcenter_consumer_paused',
      expr: /== 1/, for: '5m' },
    { what: 'no node consuming', alert: 'PushCenterNoNodeConsuming', metric: 'pushcenter_consumer_paused',
      expr: /count\(pushcenter_consumer_paused == 0\) or vector\(0\)\) == 0/, severity: 'critical' },
    { what: 'a dependency down for a minute', alert: 'PushCenterDependencyDown', metric: 'pushcenter_dependency_up',
      expr: /== 0/, for: '1m' },
    { what: 'inbox dead letters by reason, as a warning', alert: 'PushCenterInboxDeadLetters', metric: 'pushcenter_dead_letters_total',
      expr: /sum by \(reason\) \(increase\(pushcenter_dead_letters_total\{reason=~"inbox_full\|inbox_expired"\}\[10m\]\)\) > 0/,
      severity: 'warning' },
    { what: 'invalid dead letters by reason, as info', alert: 'PushCenterInvalidMessages', metric: 'pushcenter_dead_letters_total',
      expr: /sum by \(reason\) \(increase\(pushcenter_dead_letters_total\{reason!~"inbox_full\|inbox_expired"\}\[10m\]\)\) > 0/,
      severity: 'info' },
    { what: 'gap notices', alert: 'PushCenterGapNotices', metric: 'pushcenter_gap_notices_total', expr: /increase\(/ },
    { what: 'a saturated event loop', alert: 'PushCenterEventLoopSaturated', metric: 'pushcenter_event_loop_busy_seconds_total',
      expr: /rate\(pushcenter_event_loop_busy_seconds_total\[5m\]\) > 0\.9/ },
    { what: 'a node not scraped', alert: 'PushCenterNodeDown', metric: 'up', expr: /^up\{job="push-center"\} == 0$/ },
  ];

  it.each(wanted)('alerts on $what', ({ alert, metric, expr, for: duration, severity }) => {
    const r = rule(alert);
    expect(readQuery(r.expr).metrics).toContain(metric);
    expect(r.expr).toMatch(expr);
    if (duration !== undefined) expect(r.for).toBe(duration);
    if (severity !== undefined) expect(r.labels?.severity).toBe(severity);
  });

  it('is loaded by the compose Prometheus: rule_files names where docker-compose.yml mounts it', () => {
    const compose = parse(read('docker-compose.yml'), { merge: true }) as { services: Record<string, { volumes?: unknown[] }> };
    const mounted = (compose.services.prometheus?.volumes ?? [])
      .filter((volume): volume is string => typeof volume === 'string')
      .map((volume) => volume.split(':'))
      .find(([source]) => source === `./${RULES}`);
    expect(mounted, `the prometheus service does not mount ./${RULES}`).toBeDefined();
    expect(prometheus.rule_files).toEqual([mounted![1]]);
  });
});

// --- promtool -----------------------------------------------------------------------------------------

function promtoolVersion(): string | undefined {
  const run = spawnSync('promtool', ['--version'], { encoding: 'utf8' });
  if (run.error || run.status !== 0) return undefined;
  return /promtool, version (\S+)/.exec(run.stdout + run.stderr)?.[1] ?? 'unknown version';
}

const PROMTOOL = promtoolVersion();

function promtool(args: string[]): { status: number | null; output: string } {
  const run = spawnSync('promtool', args, { cwd: ROOT, encoding: 'utf8' });
  return { status: run.status, output: `${run.stdout}${run.stderr}` };
}

/** Runs `check` with promtool, or says (test name and a printed line) that promtool was not there. */
function withPromtool(check: () => void): () => void {
  return () => {
    if (!PROMTOOL) {
      console.warn('promtool is not on the PATH (Debian: apt-get install prometheus): this promtool check did not run; ' +
        'the YAML, metric-name, annotation and compose checks of config/alerts.yml did.');
      return;
    }
    check();
  };
}

/**
 * Made-up series, one sample a minute for 30 minutes: node2 stops answering at minute 10; node1 pauses
 * at 5 and loses Redis at 5; inbox dead letters of a reason seen before at 10, of a new reason at 12;
 * invalid ones at 15; gap notices at 15; node1's event loop busy 95 % of the time.
 */
const SERIES: Array<{ series: string; values: string }> = [
  { series: `up{job="${JOB}",instance="node1"}`, values: '1x30' },
  { series: `up{job="${JOB}",instance="node2"}`, values: '1x9 0x20' },
  { series: `pushcenter_consumer_paused{job="${JOB}",instance="node1"}`, values: '0x4 1x25' },
  { series: `pushcenter_consumer_paused{job="${JOB}",instance="node2"}`, values: '0x9' },
  { series: `pushcenter_dependency_up{job="${JOB}",instance="node1",dependency="redis"}`, values: '1x4 0x25' },
  { series: `pushcenter_dependency_up{job="${JOB}",instance="node1",dependency="amqp"}`, values: '1x30' },
  { series: `pushcenter_dead_letters_total{job="${JOB}",instance="node1",reason="inbox_expired"}`, values: '0x9 2x20' },
  { series: `pushcenter_dead_letters_total{job="${JOB}",instance="node1",reason="inbox_full"}`, values: '_x12 4x17' },
  { series: `pushcenter_dead_letters_total{job="${JOB}",instance="node2",reason="not_json"}`, values: '0x9' },
  { series: `pushcenter_dead_letters_total{job="${JOB}",instance="node1",reason="not_json"}`, values: '_x14 1x15' },
  { series: `pushcenter_gap_notices_total{job="${JOB}",instance="node1"}`, values: '0x14 3x15' },
  { series: `pushcenter_event_loop_busy_seconds_total{job="${JOB}",instance="node1"}`, values: '0+57x30' },
  { series: `pushcenter_event_loop_busy_seconds_total{job="${JOB}",instance="node2"}`, values: '0+30x9' },
];

const node1 = `instance="node1",job="${JOB}"`;
/** Which label sets each alert's expression returns at a minute of SERIES (none: it does not fire). */
const EXPECTED: Array<{ alert: string; at: string; fires: string[] }> = [
  { alert: 'PushCenterNodeDown', at: '5m', fires: [] },
  { alert: 'PushCenterNodeDown', at: '12m', fires: [`{instance="node2",job="${JOB}"}`] },
  { alert: 'PushCenterConsumerPaused', at: '3m', fires: [] },
  { alert: 'PushCenterConsumerPaused', at: '8m', fires: [`{${node1}}`] },
  { alert: 'PushCenterNoNodeConsuming', at: '8m', fires: [] },
  { alert: 'PushCenterNoNodeConsuming', at: '20m', fires: ['{}'] },
  { alert: 'PushCenterDependencyDown', at: '3m', fires: [] },
  { alert: 'PushCenterDependencyDown', at: '10m', fires: [`{dependency="redis",${node1}}`] },
  { alert: 'PushCenterInboxDeadLetters', at: '5m', fires: [] },
  { alert: 'PushCenterInboxDeadLetters', at: '11m', fires: ['{reason="inbox_expired"}'] },
  // inbox_full has one sample only: increase() sees nothing, the "unless offset" half does.
  { alert: 'PushCenterInboxDeadLetters', at: '12m', fires: ['{reason="inbox_expired"}', '{reason="inbox_full"}'] },
  { alert: 'PushCenterInboxDeadLetters', at: '25m', fires: [] },
  { alert: 'PushCenterInvalidMessages', at: '12m', fires: [] },
  { alert: 'PushCenterInvalidMessages', at: '16m', fires: ['{reason="not_json"}'] },
  { alert: 'PushCenterGapNotices', at: '5m', fires: [] },
  { alert: 'PushCenterGapNotices', at: '16m', fires: ['{}'] },
  { alert: 'PushCenterEventLoopSaturated', at: '10m', fires: [`{${node1}}`] },
];

describe(`config/alerts.yml with promtool (${PROMTOOL ? `promtool ${PROMTOOL} on the PATH: run` : 'promtool not on the PATH: NOT run'})`, () => {
  it('promtool check rules accepts it', withPromtool(() => {
    const { status, output } = promtool(['check', 'rules', RULES]);
    expect(status, output).toBe(0);
    expect(output).toMatch(new RegExp(`SUCCESS: ${rules.length} rules found`));
  }));

  it('promtool check config accepts config/prometheus.yml with its rule_files where compose mounts them', withPromtool(() => {
    const dir = mkdtempSync(join(tmpdir(), 'push-center-prometheus-'));
    try {
      const config = { ...parse(read('config/prometheus.yml')), rule_files: [join(ROOT, RULES)] };
      writeFileSync(join(dir, 'prometheus.yml'), stringify(config));
      const { status, output } = promtool(['check', 'config', join(dir, 'prometheus.yml')]);
      expect(status, output).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }));

  it('promtool test rules: each alert\'s expression fires when it should, and not before', withPromtool(() => {
    const dir = mkdtempSync(join(tmpdir(), 'push-center-alerts-'));
    try {
      const tests = {
        rule_files: [join(ROOT, RULES)],
        evaluation_interval: '1m',
        tests: [{
          interval: '1m',
          input_series: SERIES,
          // "* 0 + 1": one sample of value 1 per label set the alert would fire for.
          promql_expr_test: EXPECTED.map(({ alert, at, fires }) => ({
            expr: `(${rule(alert).expr}) * 0 + 1`,
            eval_time: at,
            exp_samples: fires.map((labels) => ({ labels, value: 1 })),
          })),
        }],
      };
      writeFileSync(join(dir, 'alerts.test.yml'), stringify(tests));
      const { status, output } = promtool(['test', 'rules', join(dir, 'alerts.test.yml')]);
      expect(status, output).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }));
});
