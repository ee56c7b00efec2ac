import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll } from 'vitest';
import { TcpProxy } from './proxy.js';

/** How long starting a cluster may take, `redis-cli --cluster create` included. */
const START_TIMEOUT_MS = 45_000;
/** Attempts with fresh ports when a server could not bind the ports it was given (another process took them). */
const START_ATTEMPTS = 3;
const STOP_GRACE_MS = 5_000;

export interface ClusterOptions {
  masters?: number;
  /**
   * Puts a `TcpProxy` in front of each master, which the masters announce as their address: clients
   * reach them only through the proxies, which a test can cut (the nodes keep talking to each other).
   */
  proxied?: boolean;
}

/**
 * A Redis Cluster of three masters (no replicas) on free ports of this machine, started with
 * `redis-server` and `redis-cli --cluster create` for one test file: no persistence, a temporary
 * directory of its own, and every process it started stopped (by pid) and the directory removed by
 * `stop()`. `use()` does that around the file's tests, also when a test fails; a process that exits
 * without running `stop()` kills the servers and removes the directory on its way out.
 */
export class LocalRedisCluster {
  private constructor(
    /** Where clients reach the masters: their ports, or their proxies' ports. */
    readonly ports: number[],
    /** Where the masters listen, proxied or not. */
    readonly masterPorts: number[],
    private readonly proxies: TcpProxy[],
    private readonly servers: ChildProcess[],
    private readonly dir: string,
    private readonly killOnExit: () => void,
  ) {}

  /** The `REDIS_URL` of this cluster, every master a seed. */
  get url(): string {
    return `redis+cluster://${this.ports.map((port) => `127.0.0.1:${port}`).join(',')}`;
  }

  /**
   * Drops every client connection to every master, or to the master of `ports[index]`, and refuses new
   * ones (a proxied cluster only).
   */
  cut(index?: number): void {
    for (const proxy of this.proxiesAt(index)) proxy.cut();
  }

  restore(index?: number): void {
    for (const proxy of this.proxiesAt(index)) proxy.restore();
  }

  private proxiesAt(index: number | undefined): TcpProxy[] {
    const proxies = this.requireProxies();
    return index === undefined ? proxies : [proxies[index]!];
  }

  /** Commands still reach the masters, their answers are lost (a proxied cluster only). */
  muteAnswers(): void {
    for (const proxy of this.requireProxies()) proxy.muteAnswers();
  }

  private requireProxies(): TcpProxy[] {
    if (this.proxies.length === 0) throw new Error('start the cluster with { proxied: true } to cut its connections');
    return this.proxies;
  }

  /** Starts a cluster for the running test file and stops it after the file's last test. */
  static use(options: ClusterOptions = {}): { readonly cluster: LocalRedisCluster } {
    const holder: { cluster?: LocalRedisCluster } = {};
    beforeAll(async () => {
      holder.cluster = await LocalRedisCluster.start(options);
    }, START_TIMEOUT_MS * START_ATTEMPTS);
    afterAll(async () => {
      await holder.cluster?.stop();
    }, STOP_GRACE_MS * 2);
    return {
      get cluster(): LocalRedisCluster {
        if (!holder.cluster) throw new Error('the local Redis Cluster has not started (see the error of beforeAll)');
        return holder.cluster;
      },
    };
  }

  static async start(options: ClusterOptions = {}): Promise<LocalRedisCluster> {
    for (let attempt = 1; ; attempt += 1) {
      try {
        return await LocalRedisCluster.startOnce(options.masters ?? 3, options.proxied ?? false);
      } catch (err) {
        if (!(err instanceof PortTaken) || attempt >= START_ATTEMPTS) throw err;
      }
    }
  }

  private static async startOnce(masters: number, proxied: boolean): Promise<LocalRedisCluster> {
    const dir = await mkdtemp(join(tmpdir(), 'push-center-redis-cluster-'));
    const servers: ChildProcess[] = [];
    const proxies: TcpProxy[] = [];
    const killOnExit = (): void => {
      for (const server of servers) if (server.exitCode === null && server.signalCode === null) server.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    };
    process.once('exit', killOnExit);
    const ports: number[] = [];
    const cluster = () => new LocalRedisCluster(proxied ? proxies.map((proxy) => proxy.port) : ports, ports, proxies, servers, dir, killOnExit);
    try {
      const free = await freePorts(masters * 2);
      for (let i = 0; i < masters; i += 1) {
        const [port, busPort] = [free[2 * i]!, free[2 * i + 1]!];
        const nodeDir = join(dir, String(port));
        await mkdir(nodeDir);
        const proxy = proxied ? await TcpProxy.start(`redis://127.0.0.1:${port}`) : undefined;
        if (proxy) proxies.push(proxy);
        servers.push(await startServer(port, busPort, nodeDir, proxy?.port));
        ports.push(port);
      }
      await createCluster(ports);
      await Promise.all(ports.map((port) => waitForClusterOk(port, masters)));
      return cluster();
    } catch (err) {
      await cluster().stop();
      throw err;
    }
  }

  /** Stops every server this cluster started (SIGTERM, then SIGKILL) and its proxies, and removes its directory. */
  async stop(): Promise<void> {
    await Promise.all(this.proxies.map((proxy) => proxy.close()));
    await Promise.all(this.servers.map(stopProcess));
    process.off('exit', this.killOnExit);
    await rm(this.dir, { recursive: true, force: true });
  }
}

class PortTaken extends Error {}

/** Ports nothing listens on now (the OS picks them); the server binds them moments later. */
async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(Array.from({ length: count }, () => new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(server));
  })));
  const ports = servers.map((server) => (server.address() as AddressInfo).port);
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  return ports;
}

async function startServer(port: number, busPort: number, dir: string, announcedPort?: number): Promise<ChildProcess> {
  const server = spawn('redis-server', [
    '--port', String(port), '--bind', '127.0.0.1',
    '--cluster-enabled', 'yes', '--cluster-port', String(busPort), '--cluster-config-file', join(dir, 'nodes.conf'),
    ...(announcedPort === undefined ? [] : ['--cluster-announce-port', String(announcedPort), '--cluster-announce-bus-port', String(busPort)]),
    '--dir', dir, '--save', '', '--appendonly', 'no', '--loglevel', 'warning',
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  for (const stream of [server.stdout, server.stderr]) stream?.on('data', (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-4000);
  });
  const exited = new Promise<never>((_, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => reject(err.code === 'ENOENT'
      ? new Error('redis-server is not installed (not on PATH): the Redis Cluster tests start a cluster of their own with it; install Redis 7 (e.g. `apt-get install redis-server`)')
      : err));
    server.once('exit', (code, signal) => {
      const message = `redis-server on port ${port} exited (${signal ?? code}) while starting: ${output.trim()}`;
      reject(/Address already in use/i.test(output) ? new PortTaken(message) : new Error(message));
    });
  });
  exited.catch(() => undefined);
  try {
    await Promise.race([answers(port), exited]);
  } catch (err) {
    await stopProcess(server);
    throw err;
  }
  return server;
}

/** Resolves once a server answers PING on the port; tries again while nothing listens yet. */
async function answers(port: number): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    const probe = new Redis({ port, host: '127.0.0.1', lazyConnect: true, retryStrategy: null });
    probe.on('error', () => undefined);
    try {
      await probe.connect();
      await probe.ping();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`redis-server on port ${port} did not answer within ${START_TIMEOUT_MS} ms: ${(err as Error).message}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    } finally {
      probe.disconnect();
    }
  }
}

function createCluster(ports: number[]): Promise<void> {
  const nodes = ports.map((port) => `127.0.0.1:${port}`);
  return new Promise((resolve, reject) => {
    execFile('redis-cli', ['--cluster', 'create', ...nodes, '--cluster-replicas', '0', '--cluster-yes'], { timeout: START_TIMEOUT_MS }, (err, stdout, stderr) => {
      if ((err as NodeJS.ErrnoException | null)?.code === 'ENOENT') {
        reject(new Error('redis-cli is not installed (not on PATH): the Redis Cluster tests create their cluster with `redis-cli --cluster create`'));
      } else if (err) {
        reject(new Error(`redis-cli --cluster create ${nodes.join(' ')} failed: ${err.message}\n${stdout}${stderr}`));
      } else {
        resolve();
      }
    });
  });
}

/** Resolves once the node reports the cluster healthy and knows every master. */
async function waitForClusterOk(port: number, masters: number): Promise<void> {
  const client = new Redis({ port, host: '127.0.0.1' });
  client.on('error', () => undefined);
  const deadline = Date.now() + START_TIMEOUT_MS;
  let info = '';
  try {
    while (Date.now() < deadline) {
      info = String(await client.cluster('INFO'));
      if (info.includes('cluster_state:ok') && info.includes(`cluster_known_nodes:${masters}`) && info.includes('cluster_slots_ok:16384')) return;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error(`the Redis Cluster node on port ${port} did not report cluster_state:ok in time:\n${info}`);
  } finally {
    client.disconnect();
  }
}

async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
  await exited;
  clearTimeout(timer);
}
