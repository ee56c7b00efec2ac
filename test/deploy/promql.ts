import { startNode } from '../support/harness.js';

/**
 * Just enough PromQL reading to check a dashboard or alerting rules against what push-center exports:
 * which metric names an expression selects, which functions it calls and which labels it groups by. Not
 * a full parser: label names, strings, durations and Grafana variables are removed first, so what
 * remains is metric names, function and aggregation names, keywords, numbers and operators.
 */

/** PromQL functions and aggregation operators (Prometheus 2.x and 3.x). */
export const PROMQL_FUNCTIONS: ReadonlySet<string> = new Set([
  // aggregation operators
  'sum', 'min', 'max', 'avg', 'group', 'stddev', 'stdvar', 'count', 'count_values', 'bottomk', 'topk',
  'quantile', 'limitk', 'limit_ratio',
  // functions
  'abs', 'absent', 'absent_over_time', 'ceil', 'changes', 'clamp', 'clamp_max', 'clamp_min',
  'day_of_month', 'day_of_week', 'day_of_year', 'days_in_month', 'delta', 'deriv', 'exp', 'floor',
  'histogram_avg', 'histogram_count', 'histogram_fraction', 'histogram_quantile', 'histogram_stddev',
  'histogram_stdvar', 'histogram_sum', 'holt_winters', 'double_exponential_smoothing', 'hour', 'idelta',
  'increase', 'info', 'irate', 'label_join', 'label_replace', 'ln', 'log2', 'log10', 'minute', 'month',
  'predict_linear', 'rate', 'resets', 'round', 'scalar', 'sgn', 'sort', 'sort_desc', 'sort_by_label',
  'sort_by_label_desc', 'sqrt', 'time', 'timestamp', 'vector', 'year',
  'avg_over_time', 'min_over_time', 'max_over_time', 'sum_over_time', 'count_over_time',
  'quantile_over_time', 'stddev_over_time', 'stdvar_over_time', 'last_over_time', 'present_over_time',
  'mad_over_time', 'acos', 'acosh', 'asin', 'asinh', 'atan', 'atanh', 'cos', 'cosh', 'sin', 'sinh', 'tan',
  'tanh', 'deg', 'rad', 'pi',
  // the @ modifier's preprocessors
  'start', 'end',
]);

/** Words that are not metric names where they stand alone. */
const KEYWORDS: ReadonlySet<string> = new Set([
  'and', 'or', 'unless', 'atan2', 'bool', 'offset', 'by', 'without', 'on', 'ignoring', 'group_left',
  'group_right', 'inf', 'nan',
]);

const GROUPING = /\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g;

export interface QueryNames {
  /** Names of the series selected, e.g. `pushcenter_delivery_latency_seconds_bucket`. */
  metrics: string[];
  /** Functions and aggregations called, e.g. `histogram_quantile`, `sum`, `rate`. */
  functions: string[];
  /** Labels named in `by (...)` clauses. */
  groupBy: string[];
}

/** Reads one PromQL expression (Grafana's `$variables` allowed). */
export function readQuery(expr: string): QueryNames {
  let text = expr
    .replace(/#[^\n]*/g, ' ')
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    .replace(/\$\{[^}]*\}|\$\w+/g, ' ')
    .replace(/\{[^}]*\}/g, '{}')
    .replace(/\[[^\]]*\]/g, '[]');
  const groupBy: string[] = [];
  text = text.replace(GROUPING, (_clause, keyword: string, labels: string) => {
    if (keyword === 'by') groupBy.push(...labels.split(',').map((label) => label.trim()).filter(Boolean));
    return ' ';
  });

  const metrics = new Set<string>();
  const functions = new Set<string>();
  // An identifier not glued to a number (1e3, 5m) or to another name.
  for (const match of text.matchAll(/(?<![\w:.])[a-zA-Z_:][\w:]*/g)) {
    const name = match[0];
    const next = text.slice(match.index + name.length).trimStart()[0];
    if (next === '(') functions.add(name);
    else if (!KEYWORDS.has(name)) metrics.add(name);
  }
  return { metrics: [...metrics], functions: [...functions], groupBy: [...new Set(groupBy)] };
}

/**
 * Reads a Grafana template variable query for Prometheus: `label_values(selector, label)`,
 * `query_result(expr)`, or a plain expression.
 */
export function readVariableQuery(query: string): QueryNames {
  const labelValues = /^\s*label_values\s*\((.*),\s*[a-zA-Z_]\w*\s*\)\s*$/s.exec(query);
  if (labelValues) return readQuery(labelValues[1] ?? '');
  if (/^\s*label_values\s*\(\s*[a-zA-Z_]\w*\s*\)\s*$/.test(query) || /^\s*label_names\s*\(/.test(query)) {
    return { metrics: [], functions: [], groupBy: [] };
  }
  const queryResult = /^\s*query_result\s*\((.*)\)\s*$/s.exec(query);
  return readQuery(queryResult ? (queryResult[1] ?? '') : query);
}

/** `# TYPE` lines of a Prometheus text exposition: every metric family, sampled or not, with its type. */
export function exportedFamilies(exposition: string): Map<string, string> {
  const families = new Map<string, string>();
  for (const line of exposition.split('\n')) {
    const match = /^# TYPE (\S+) (\S+)/.exec(line);
    if (match) families.set(match[1]!, match[2]!);
  }
  return families;
}

/**
 * The metric families push-center exports, read from a node started for the purpose: the embedded
 * default, so no RabbitMQ or Redis is needed. Families without samples (pushcenter_dependency_up there)
 * still have their # TYPE line.
 */
export async function pushCenterFamilies(): Promise<Map<string, string>> {
  const node = await startNode();
  try {
    const response = await fetch(`${node.url}/metrics`);
    return exportedFamilies(await response.text());
  } finally {
    await node.close();
  }
}

/** Whether a series name belongs to an exported family (histograms and summaries add suffixes). */
export function isExported(name: string, families: Map<string, string>): boolean {
  if (families.has(name)) return true;
  const suffix = /^(.*)_(bucket|sum|count)$/.exec(name);
  if (!suffix) return false;
  const type = families.get(suffix[1]!);
  if (type === 'histogram') return true;
  return type === 'summary' && suffix[2] !== 'bucket';
}
