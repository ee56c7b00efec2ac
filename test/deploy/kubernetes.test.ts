import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { loadConfig } from '../../src/config/config.js';

/**
 * docs/kubernetes.yaml, checked without a cluster: the objects it needs are there and agree with each
 * other and with the code (settings a node accepts, the routes it serves, its shutdown timing).
 */

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Doc = any;
const docs: Doc[] = parseAllDocuments(readFileSync(`${ROOT}docs/kubernetes.yaml`, 'utf8')).map((d) => {
  if (d.errors.length > 0) throw new Error(`docs/kubernetes.yaml: ${d.errors[0]!.message}`);
  return d.toJS();
});
const of = (kind: string): Doc => {
  const found = docs.filter((d) => d.kind === kind);
  if (found.length !== 1) throw new Error(`docs/kubernetes.yaml has ${found.length} ${kind}s, expected 1`);
  return found[0];
};

const deployment = of('Deployment');
const pod = deployment.spec.template;
const container = pod.spec.containers[0];
const configMap = of('ConfigMap');

describe('docs/kubernetes.yaml', () => {
  it('has a Deployment, a PodDisruptionBudget, a Service and a ConfigMap, each with apiVersion, kind and name', () => {
    expect(docs.map((d) => d.kind).sort()).toEqual(['ConfigMap', 'Deployment', 'PodDisruptionBudget', 'Service']);
    for (const doc of docs) {
      expect(doc.apiVersion).toMatch(/^(v1|apps\/v1|policy\/v1)$/);
      expect(doc.metadata.name).toBe('push-center');
    }
  });

  it('selects the pods it runs: the Deployment, the budget and the Service use the pods\' labels', () => {
    const labels = pod.metadata.labels;
    const matches = (selector: Record<string, string>) => Object.entries(selector).every(([k, v]) => labels[k] === v);
    expect(matches(deployment.spec.selector.matchLabels)).toBe(true);
    expect(matches(of('PodDisruptionBudget').spec.selector.matchLabels)).toBe(true);
    expect(matches(of('Service').spec.selector)).toBe(true);
    expect(of('PodDisruptionBudget').spec.maxUnavailable).toBeLessThan(deployment.spec.replicas);
  });

  it('is ready on /readyz and alive on /healthz, on the port the node listens on', () => {
    const port = container.ports.find((p: Doc) => p.name === 'http');
    expect(String(port.containerPort)).toBe(configMap.data.PORT);
    expect(container.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'http' });
    expect(container.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'http' });
    expect(of('Service').spec.ports[0].targetPort).toBe('http');
  });

  it('gives a draining node time to finish: preStop pause plus SHUTDOWN_TIMEOUT_MS within the grace period', () => {
    const pause = Number(container.lifecycle.preStop.exec.command[1]);
    const shutdownS = Number(configMap.data.SHUTDOWN_TIMEOUT_MS) / 1000;
    expect(pause).toBeGreaterThan(0);
    // A few seconds more for closing sockets and connections.
    expect(pod.spec.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(pause + shutdownS + 5);
  });

  it('sets only settings a node accepts, with values it accepts, and names each pod as its node', () => {
    // The secret's values are the operator's; stand-ins of the right form take their place.
    const secret = { AMQP_URL: 'amqp://u:p@rabbitmq:5672', REDIS_URL: 'redis://redis:6379', AUTH_JWT_SECRET: 'x'.repeat(64), API_KEYS: 'backend-abc:publish' };
    const env = { ...configMap.data, ...secret, NODE_ID: 'push-center-7d9f-abcde' };
    delete env.NODE_OPTIONS;
    expect(() => loadConfig(env)).not.toThrow();
    // The names the configuration code reads: a typo here would be ignored by the node.
    const read = new Set([...readFileSync(`${ROOT}src/config/config.ts`, 'utf8').matchAll(/'([A-Z][A-Z0-9_]+)'/g)].map((m) => m[1]));
    read.add('NODE_OPTIONS');
    for (const name of Object.keys(configMap.data)) expect(read.has(name), `${name} is not a setting`).toBe(true);
    expect(container.env).toContainEqual({ name: 'NODE_ID', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } });
    expect(container.envFrom).toEqual([{ configMapRef: { name: 'push-center' } }, { secretRef: { name: 'push-center' } }]);
  });

  it('keeps the heap under the memory limit', () => {
    const heapMb = Number(/--max-old-space-size=(\d+)/.exec(configMap.data.NODE_OPTIONS)![1]);
    const limit = /^(\d+)Gi$/.exec(container.resources.limits.memory);
    expect(limit).not.toBeNull();
    expect(heapMb).toBeLessThan(Number(limit![1]) * 1024);
  });
});
