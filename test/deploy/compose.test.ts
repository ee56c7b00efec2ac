import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadConfig } from '../../src/config/config.js';

/**
 * The Docker deployment, checked without a Docker engine: docker-compose.yml against the files it
 * mounts and builds, and the nginx, Prometheus and Grafana configurations against the compose services.
 * Where `docker compose` is installed, it validates the file as well.
 */

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const read = (path: string): string => readFileSync(join(ROOT, path), 'utf8');

interface Service {
  image?: string;
  build?: string | { context?: string; dockerfile?: string };
  environment?: Record<string, string | number | boolean | null> | string[];
  ports?: Array<string | number | { published?: string | number; target?: number }>;
  volumes?: Array<string | { type?: string; source?: string; target?: string }>;
  depends_on?: string[] | Record<string, { condition?: string }>;
  healthcheck?: { test?: string | string[]; disable?: boolean };
  restart?: string;
  [key: string]: unknown;
}

interface Compose {
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
  [key: string]: unknown;
}

// YAML merge keys (`<<: *anchor`) are how compose files share settings; compose reads them too.
const compose = parse(read('docker-compose.yml'), { merge: true }) as Compose;
const services = compose.services;
const NODES = ['node1', 'node2'];

function service(name: string): Service {
  const found = services[name];
  if (!found) throw new Error(`docker-compose.yml has no service ${name}`);
  return found;
}

function environment(svc: Service): Record<string, string> {
  if (Array.isArray(svc.environment)) {
    return Object.fromEntries(
      svc.environment.map((entry) => {
        const at = entry.indexOf('=');
        return at < 0 ? [entry, ''] : [entry.slice(0, at), entry.slice(at + 1)];
      }),
    );
  }
  return Object.fromEntries(Object.entries(svc.environment ?? {}).map(([key, value]) => [key, String(value ?? '')]));
}

function dependsOn(svc: Service): Record<string, string> {
  if (Array.isArray(svc.depends_on)) return Object.fromEntries(svc.depends_on.map((name) => [name, 'service_started']));
  return Object.fromEntries(
    Object.entries(svc.depends_on ?? {}).map(([name, spec]) => [name, spec.condition ?? 'service_started']),
  );
}

interface Mount {
  source: string;
  target: string;
  bind: boolean;
}

function mounts(svc: Service): Mount[] {
  return (svc.volumes ?? []).map((volume) => {
    if (typeof volume === 'string') {
      const [source = '', target = ''] = volume.split(':');
      return { source, target, bind: /^[./~]/.test(source) };
    }
    return { source: volume.source ?? '', target: volume.target ?? '', bind: volume.type === 'bind' };
  });
}

/** Host ports a service publishes, with the container port each maps to. */
function publishedPorts(svc: Service): Array<{ host: number; container: number }> {
  return (svc.ports ?? []).flatMap((port) => {
    if (typeof port === 'object') {
      return port.published === undefined ? [] : [{ host: Number(port.published), container: Number(port.target) }];
    }
    const parts = String(port).split('/')[0]!.split(':');
    if (parts.length < 2) return [];
    return [{ host: Number(parts[parts.length - 2]), container: Number(parts[parts.length - 1]) }];
  });
}

function buildDirectory(svc: Service): string | undefined {
  if (svc.build === undefined) return undefined;
  return join(ROOT, typeof svc.build === 'string' ? svc.build : (svc.build.context ?? '.'));
}

// --- the Dockerfile -------------------------------------------------------------------------------

interface Instruction {
  keyword: string;
  args: string;
}

/** Instructions per build stage, continuation lines joined, comments dropped. */
function dockerfileStages(text: string): Instruction[][] {
  const stages: Instruction[][] = [];
  const logical = text
    .split('\n')
    .filter((line) => !/^\s*#/.test(line))
    .join('\n')
    .replace(/\\\n/g, ' ');
  for (const line of logical.split('\n')) {
    const match = /^\s*([A-Za-z]+)\s+(.*)$/.exec(line);
    if (!match) continue;
    const instruction = { keyword: match[1]!.toUpperCase(), args: match[2]!.trim() };
    if (instruction.keyword === 'FROM') stages.push([]);
    stages[stages.length - 1]?.push(instruction);
  }
  return stages;
}

function execForm(args: string): string[] | undefined {
  try {
    const parsed = JSON.parse(args) as unknown;
    return Array.isArray(parsed) ? parsed.map(String) : undefined;
  } catch {
    return undefined;
  }
}

/** Whether .dockerignore keeps `path` out of the build context (last matching pattern wins). */
function dockerIgnores(path: string, patterns: string[]): boolean {
  const parents = path.split('/').map((_, i, parts) => parts.slice(0, i + 1).join('/'));
  let ignored = false;
  for (const raw of patterns) {
    const negated = raw.startsWith('!');
    const pattern = (negated ? raw.slice(1) : raw).replace(/^\/+|\/+$/g, '');
    const source = pattern
      .split(/(\*\*|\*|\?)/)
      .map((part) =>
        part === '**' ? '.*' : part === '*' ? '[^/]*' : part === '?' ? '[^/]' : part.replace(/[.+^${}()|[\]\\]/g, '\\$&'),
      )
      .join('');
    const regex = new RegExp(`^${source}$`);
    if (parents.some((candidate) => regex.test(candidate))) ignored = !negated;
  }
  return ignored;
}

const dockerfile = read('Dockerfile');
const stages = dockerfileStages(dockerfile);
const finalStage = stages[stages.length - 1] ?? [];
const dockerignore = read('.dockerignore')
  .split('\n')
  .map((line) => line.trim())
  .filter((line) => line !== '' && !line.startsWith('#'));

// --- nginx ------------------------------------------------------------------------------------------

const nginx = read('config/nginx.conf').replace(/#[^\n]*/g, '');

function nginxBlock(header: RegExp): string {
  const start = header.exec(nginx);
  if (!start) throw new Error(`config/nginx.conf has no block ${header}`);
  let depth = 0;
  for (let i = nginx.indexOf('{', start.index); i < nginx.length; i++) {
    if (nginx[i] === '{') depth++;
    if (nginx[i] === '}' && --depth === 0) return nginx.slice(start.index, i + 1);
  }
  throw new Error(`config/nginx.conf: block ${header} is not closed`);
}

/** A duration in nginx's syntax (`75s`, `2m`, `90`) in seconds. */
function nginxSeconds(value: string): number {
  const match = /^(\d+)(ms|s|m|h)?$/.exec(value);
  if (!match) throw new Error(`not an nginx duration: ${value}`);
  const factor = { ms: 0.001, s: 1, m: 60, h: 3600 }[match[2] ?? 's'] ?? 1;
  return Number(match[1]) * factor;
}

// --------------------------------------------------------------------------------------------------------

describe('docker-compose.yml', () => {
  it('is a compose file docker compose accepts', () => {
    const dockerCompose = spawnSync('docker', ['compose', 'version'], { encoding: 'utf8' });
    if (dockerCompose.status === 0) {
      const check = spawnSync('docker', ['compose', 'config', '-q'], { cwd: ROOT, encoding: 'utf8' });
      expect(check.status, check.stderr).toBe(0);
      return;
    }
    // No `docker compose` here (no Docker engine on this machine): the structure compose requires.
    expect(compose).not.toHaveProperty('version');
    const topLevel = ['name', 'services', 'networks', 'volumes', 'configs', 'secrets', 'include'];
    expect(Object.keys(compose).filter((key) => !topLevel.includes(key) && !key.startsWith('x-'))).toEqual([]);
    for (const [name, svc] of Object.entries(services)) {
      expect(svc.image !== undefined || svc.build !== undefined, `${name}: needs image or build`).toBe(true);
      expect(name).toMatch(/^[a-z0-9][a-z0-9_-]*$/);
    }
  });

  it('has RabbitMQ, Redis, two push-center nodes, nginx, Prometheus and Grafana', () => {
    expect(Object.keys(services).sort()).toEqual(
      ['grafana', 'nginx', 'node1', 'node2', 'prometheus', 'rabbitmq', 'redis'].sort(),
    );
    expect(service('rabbitmq').image).toBe('rabbitmq:3.13-management');
    expect(service('redis').image).toBe('redis:7-alpine');
    expect(service('nginx').image).toBe('nginx:1.27-alpine');
    expect(service('prometheus').image).toMatch(/^prom\/prometheus(:|$)/);
    expect(service('grafana').image).toMatch(/^grafana\/grafana(:|$)/);
  });

  it('builds both nodes from a directory that has the Dockerfile', () => {
    for (const name of NODES) {
      const directory = buildDirectory(service(name));
      expect(directory, `${name}: build`).toBeDefined();
      const file = typeof service(name).build === 'object' ? (service(name).build as { dockerfile?: string }).dockerfile : undefined;
      expect(existsSync(join(directory!, file ?? 'Dockerfile')), `${name}: ${directory}`).toBe(true);
      expect(service(name).restart).toBe('unless-stopped');
    }
  });

  it('mounts only files and folders that exist in the repository, and declares its named volumes', () => {
    for (const [name, svc] of Object.entries(services)) {
      for (const mount of mounts(svc)) {
        if (mount.bind) {
          expect(existsSync(join(ROOT, mount.source)), `${name}: ${mount.source}`).toBe(true);
        } else {
          expect(Object.keys(compose.volumes ?? {}), `${name}: named volume ${mount.source}`).toContain(mount.source);
        }
      }
    }
  });

  it('waits only for services that exist, and for health only where there is a healthcheck', () => {
    for (const [name, svc] of Object.entries(services)) {
      for (const [dependency, condition] of Object.entries(dependsOn(svc))) {
        expect(Object.keys(services), `${name} depends on ${dependency}`).toContain(dependency);
        if (condition !== 'service_healthy') continue;
        const target = service(dependency);
        const composeCheck = target.healthcheck !== undefined && target.healthcheck.disable !== true;
        // A built service may bring its HEALTHCHECK in its Dockerfile.
        const directory = buildDirectory(target);
        const imageCheck =
          directory !== undefined && /^\s*HEALTHCHECK\s+(?!NONE)/m.test(readFileSync(join(directory, 'Dockerfile'), 'utf8'));
        expect(composeCheck || imageCheck, `${name} waits for ${dependency} to be healthy`).toBe(true);
      }
    }
    for (const name of NODES) {
      expect(dependsOn(service(name))).toEqual({ rabbitmq: 'service_healthy', redis: 'service_healthy' });
    }
    expect(service('rabbitmq').healthcheck?.test).toEqual(['CMD', 'rabbitmq-diagnostics', '-q', 'ping']);
    expect(service('redis').healthcheck?.test).toEqual(['CMD', 'redis-cli', 'ping']);
  });

  it('publishes each host port once: 3300, 5672, 8080, 9090, 15672', () => {
    const hostPorts = Object.values(services).flatMap((svc) => publishedPorts(svc).map((port) => port.host));
    expect(new Set(hostPorts).size).toBe(hostPorts.length);
    expect(hostPorts.sort((a, b) => a - b)).toEqual([3300, 5672, 8080, 9090, 15672]);
  });

  it('points the nodes at the rabbitmq and redis services, each with its own NODE_ID', () => {
    const ids = new Set<string>();
    for (const name of NODES) {
      const env = environment(service(name));
      const amqp = new URL(env.AMQP_URL ?? '');
      expect(amqp.protocol).toBe('amqp:');
      expect(amqp.hostname).toBe('rabbitmq');
      expect(amqp.port).toBe('5672');
      expect(publishedPorts(service(amqp.hostname)).map((port) => port.container)).toContain(5672);
      const redis = new URL(env.REDIS_URL ?? '');
      expect(redis.protocol).toBe('redis:');
      expect(redis.hostname).toBe('redis');
      expect(redis.port).toBe('6379');
      expect(env.AUTH_MODE).toBe('none');
      expect(env.NODE_ID).toBeTruthy();
      ids.add(env.NODE_ID!);
    }
    expect(ids.size).toBe(NODES.length);
  });

  it('gives the nodes settings push-center starts with under the image NODE_ENV=production', () => {
    expect(finalStage.some((i) => i.keyword === 'ENV' && /\bNODE_ENV=production\b/.test(i.args))).toBe(true);
    for (const name of NODES) {
      const config = loadConfig({ ...environment(service(name)), NODE_ENV: 'production' });
      expect(config.amqp.url).toBeDefined();
      expect(config.redis.url).toBeDefined();
      expect(config.port).toBe(3000);
    }
  });

  it('enables RabbitMQ\'s consistent-hash exchange for AMQP_QUEUE_SHARDS, beside the management UI the image serves', () => {
    const mount = mounts(service('rabbitmq')).find((m) => m.target === '/etc/rabbitmq/enabled_plugins');
    expect(mount, 'an enabled_plugins file mounted into the rabbitmq service').toBeDefined();
    expect(mount!.bind).toBe(true);
    // RabbitMQ reads the file as one Erlang term: a list of plugin names ending with a full stop.
    const term = read(mount!.source).replace(/%[^\n]*/g, '').trim();
    const list = /^\[([a-z0-9_,\s]*)\]\.$/.exec(term);
    expect(list, `${mount!.source} is not an Erlang list of plugin names: ${term}`).not.toBeNull();
    const plugins = list![1]!.split(',').map((name) => name.trim()).filter((name) => name !== '');
    expect(plugins).toEqual(expect.arrayContaining(['rabbitmq_consistent_hash_exchange', 'rabbitmq_management']));
    // The management UI it publishes on 15672 needs its plugin.
    expect(publishedPorts(service('rabbitmq')).map((port) => port.container)).toContain(15672);
    // The nodes start with shards from the compose settings (the commented example included).
    for (const name of NODES) {
      const config = loadConfig({ ...environment(service(name)), NODE_ENV: 'production', AMQP_QUEUE_SHARDS: '4' });
      expect(config.amqp.queueShards).toBe(4);
    }
    expect(read('docker-compose.yml')).toMatch(/#\s*AMQP_QUEUE_SHARDS: "\d+"/);
  });

  it('enables the plugin on the CI broker before the tests run', () => {
    const ci = read('.ci/run').split('\n').filter((line) => !/^\s*#/.test(line));
    const enable = ci.findIndex((line) => /^\s*rabbitmq-plugins enable\b.*\brabbitmq_consistent_hash_exchange\b/.test(line));
    const test = ci.findIndex((line) => /^\s*npm test\b/.test(line));
    expect(enable, '.ci/run enables rabbitmq_consistent_hash_exchange').toBeGreaterThanOrEqual(0);
    expect(enable).toBeLessThan(test);
  });

  it('comments how to enable JWT authentication instead', () => {
    expect(read('docker-compose.yml')).toMatch(/#.*AUTH_JWT_SECRET/);
  });

  it('mounts the nginx, Prometheus and Grafana configurations where those images read them', () => {
    const targets = (name: string) => Object.fromEntries(mounts(service(name)).map((m) => [m.target, m.source]));
    expect(targets('nginx')).toMatchObject({ '/etc/nginx/nginx.conf': './config/nginx.conf' });
    expect(targets('prometheus')).toMatchObject({ '/etc/prometheus/prometheus.yml': './config/prometheus.yml' });
    const provider = parse(read('grafana/provisioning/dashboards/push-center.yml')) as {
      providers: Array<{ type: string; options: { path: string } }>;
    };
    expect(provider.providers[0]?.type).toBe('file');
    expect(targets('grafana')).toMatchObject({
      '/etc/grafana/provisioning': './grafana/provisioning',
      [provider.providers[0]!.options.path]: './grafana/dashboards',
    });
    expect(statSync(join(ROOT, 'grafana/dashboards/push-center.json')).isFile()).toBe(true);
  });

  it('lets anonymous viewers into Grafana, on host port 3300', () => {
    const env = environment(service('grafana'));
    expect(env.GF_AUTH_ANONYMOUS_ENABLED).toBe('true');
    expect(env.GF_AUTH_ANONYMOUS_ORG_ROLE).toBe('Viewer');
    expect(publishedPorts(service('grafana'))).toEqual([{ host: 3300, container: 3000 }]);
  });
});

describe('config/prometheus.yml', () => {
  const prometheus = parse(read('config/prometheus.yml')) as {
    global?: { scrape_interval?: string };
    scrape_configs: Array<{ job_name: string; scrape_interval?: string; metrics_path?: string; static_configs: Array<{ targets: string[] }> }>;
  };

  it('scrapes every push-center node on its port, and nothing that is not a compose service', () => {
    const targets = prometheus.scrape_configs.flatMap((job) => job.static_configs.flatMap((config) => config.targets));
    for (const target of targets) {
      const [host = '', port = ''] = target.split(':');
      expect(Object.keys(services), target).toContain(host);
      const exposed = /^\s*EXPOSE\s+(.*)$/m.exec(dockerfile)?.[1]?.split(/\s+/) ?? [];
      if (NODES.includes(host)) expect(exposed, target).toContain(port);
    }
    expect(targets.sort()).toEqual(['node1:3000', 'node2:3000']);
  });

  it('scrapes /metrics every 5 s', () => {
    for (const job of prometheus.scrape_configs) {
      expect(job.scrape_interval ?? prometheus.global?.scrape_interval).toBe('5s');
      expect(job.metrics_path ?? '/metrics').toBe('/metrics');
    }
  });
});

describe('config/nginx.conf', () => {
  const upstream = nginxBlock(/\bupstream\s+(\w+)\s*\{/);
  const upstreamName = /\bupstream\s+(\w+)/.exec(upstream)![1]!;

  it('balances over exactly the compose push-center nodes, on port 3000', () => {
    const servers = [...upstream.matchAll(/^\s*server\s+([^\s;]+)/gm)].map((m) => m[1]);
    expect(servers.sort()).toEqual(NODES.map((name) => `${name}:3000`));
    for (const server of servers) expect(Object.keys(services)).toContain(server!.split(':')[0]);
  });

  it('keeps a client on one node with ip_hash, for socket.io long-polling', () => {
    expect(upstream).toMatch(/^\s*ip_hash\s*;/m);
  });

  it('passes websocket upgrades through to socket.io', () => {
    expect(nginx).toMatch(/map\s+\$http_upgrade\s+\$connection_upgrade\s*\{[^}]*default\s+upgrade\s*;/);
    expect(nginx).toMatch(/proxy_set_header\s+Upgrade\s+\$http_upgrade\s*;/);
    expect(nginx).toMatch(/proxy_set_header\s+Connection\s+\$connection_upgrade\s*;/);
    expect(nginx).toMatch(/proxy_http_version\s+1\.1\s*;/);
    const socketIo = nginxBlock(/location\s+\/socket\.io\/\s*\{/);
    expect(socketIo).toContain(`proxy_pass http://${upstreamName};`);
    const timeout = /proxy_read_timeout\s+(\w+)\s*;/.exec(socketIo)?.[1];
    // socket.io's pingInterval (25 s) + pingTimeout (20 s): the longest silence on a live connection.
    expect(nginxSeconds(timeout ?? '60s')).toBeGreaterThan(45);
  });

  it('sends everything else to the nodes too, with the client address', () => {
    expect(nginxBlock(/location\s+\/\s*\{/)).toContain(`proxy_pass http://${upstreamName};`);
    expect(nginx).toMatch(/proxy_set_header\s+X-Forwarded-For\s+\$proxy_add_x_forwarded_for\s*;/);
    expect(nginx).toMatch(/proxy_set_header\s+X-Real-IP\s+\$remote_addr\s*;/);
  });

  it('is a whole nginx.conf listening on the port compose publishes', () => {
    expect(nginxBlock(/^\s*events\s*\{/m)).toBeTruthy();
    expect(nginxBlock(/^\s*http\s*\{/m)).toBeTruthy();
    expect(nginx.split('{').length).toBe(nginx.split('}').length);
    const listen = /^\s*listen\s+(\d+)\s*;/m.exec(nginx)?.[1];
    expect(publishedPorts(service('nginx'))).toEqual([{ host: 8080, container: Number(listen) }]);
  });
});

describe('grafana/provisioning', () => {
  it('provisions the compose Prometheus under the uid the dashboard uses', () => {
    const datasources = parse(read('grafana/provisioning/datasources/prometheus.yml')) as {
      datasources: Array<{ uid: string; type: string; url: string }>;
    };
    const prometheus = datasources.datasources.find((source) => source.uid === 'prometheus');
    expect(prometheus?.type).toBe('prometheus');
    const url = new URL(prometheus!.url);
    expect(url.hostname).toBe('prometheus');
    expect(publishedPorts(service(url.hostname)).map((port) => String(port.container))).toContain(url.port);
  });
});

describe('Dockerfile', () => {
  it('builds on node:20-bookworm-slim in stages: npm ci, npm run build, dev dependencies pruned', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    for (const stage of stages) expect(stage[0]?.args).toMatch(/^node:20-bookworm-slim\b/);
    const runs = stages.flat().filter((i) => i.keyword === 'RUN').map((i) => i.args).join('\n');
    expect(runs).toMatch(/\bnpm ci\b/);
    expect(runs).toMatch(/\bnpm run build\b/);
    expect(runs).toMatch(/\bnpm (prune --omit=dev|ci --omit=dev)\b/);
    const pkg = JSON.parse(read('package.json')) as { scripts?: Record<string, string> };
    expect(pkg.scripts?.build).toBeTruthy();
  });

  it('runs dist/main.js, which `npm run build` compiles from src/main.ts', () => {
    const cmd = execForm(finalStage.find((i) => i.keyword === 'CMD')?.args ?? '');
    expect(cmd).toEqual(['node', 'dist/main.js']);
    const build = JSON.parse(read('tsconfig.build.json')) as { compilerOptions: { rootDir: string; outDir: string } };
    expect(build.compilerOptions).toMatchObject({ rootDir: 'src', outDir: 'dist' });
    expect(existsSync(join(ROOT, 'src/main.ts'))).toBe(true);
  });

  it('has `npm run build` copy the Lua scripts into dist/ beside the modules that load them', () => {
    const pkg = JSON.parse(read('package.json')) as { scripts: Record<string, string> };
    expect(pkg.scripts.build).toContain('node scripts/copy-lua.mjs');
    const sources = readdirSync(join(ROOT, 'src'), { recursive: true, encoding: 'utf8' }).filter((path) => path.endsWith('.lua'));
    expect(sources).toEqual(expect.arrayContaining([join('cluster', 'delete-key-if-unchanged.lua'), join('inbox', 'store.lua')]));
    const out = mkdtempSync(join(tmpdir(), 'push-center-dist-'));
    try {
      const run = spawnSync(process.execPath, [join(ROOT, 'scripts/copy-lua.mjs'), join(ROOT, 'src'), out], { encoding: 'utf8' });
      expect(run.status, run.stderr).toBe(0);
      for (const path of sources) expect(readFileSync(join(out, path), 'utf8'), path).toBe(read(join('src', path)));
      const copied = readdirSync(out, { recursive: true, encoding: 'utf8' }).filter((path) => statSync(join(out, path)).isFile());
      expect(copied.sort()).toEqual([...sources].sort());
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });

  it('runs as a user other than root, exposes 3000 and checks /healthz with node', () => {
    const user = finalStage.filter((i) => i.keyword === 'USER').at(-1)?.args;
    expect(user).toBeDefined();
    expect(user).not.toMatch(/^(root|0)(:|$)/);
    expect(finalStage.find((i) => i.keyword === 'EXPOSE')?.args.split(/\s+/)).toContain('3000');
    const healthcheck = finalStage.find((i) => i.keyword === 'HEALTHCHECK')?.args ?? '';
    const command = execForm(healthcheck.slice(healthcheck.indexOf('CMD') + 3).trim());
    expect(command?.[0]).toBe('node');
    expect(command?.join(' ')).toContain('/healthz');
  });

  it('copies into the image only what exists and .dockerignore lets through', () => {
    const sources = finalStage
      .filter((i) => (i.keyword === 'COPY' || i.keyword === 'ADD') && !/--from=/.test(i.args))
      .flatMap((i) => {
        const words = i.args.split(/\s+/).filter((word) => !word.startsWith('--'));
        return words.slice(0, -1);
      });
    expect(sources).toContain('config/default.json');
    for (const source of sources) {
      expect(existsSync(join(ROOT, source)), source).toBe(true);
      expect(dockerIgnores(source, dockerignore), source).toBe(false);
    }
  });

  it('keeps node_modules, dist and .git out of the build context, and the build inputs in', () => {
    for (const path of ['node_modules', 'node_modules/x/index.js', 'dist/main.js', '.git/HEAD', 'coverage/x', 'bench/results/x.json']) {
      expect(dockerIgnores(path, dockerignore), path).toBe(true);
    }
    for (const path of ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json', 'src/main.ts', 'src/inbox/store.lua',
      'scripts/copy-lua.mjs', 'config/default.json']) {
      expect(dockerIgnores(path, dockerignore), path).toBe(false);
    }
  });
});
