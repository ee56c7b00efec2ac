import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { Children, scheduleSelfAsBatch } from './lib/children.js';
import { checkServices, gitFacts, machineFacts, type ServiceVersions } from './lib/infra.js';
import { servicePids } from './lib/metrics.js';
import { parseOptions, USAGE, UsageError, type Options } from './lib/options.js';
import { PAYLOAD_BYTES } from './lib/payload.js';
import { markdown, terminalSummary } from './lib/report.js';
import type { RunResults, TargetResult } from './lib/results.js';
import { runTarget, type TargetPlan } from './lib/runner.js';
import { Resources, type SystemContext } from './lib/systems.js';
import { estimateSeconds, planTargets } from './scenarios.js';

/**
 * `npm run bench`: push-center against its peers, same clients, same payloads, one machine (issue 5).
 * See docs/BENCHMARKS.md for what is measured and how to read the results.
 */

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BENCH = path.join(ROOT, 'bench');
/** The child processes (client workers, peers) run compiled, without tsx's loader in their memory. */
const CHILD_ENTRIES = [
  'client-worker.ts',
  'peers/direct-socketio.ts',
  'peers/rabbitmq-consumer.ts',
  'peers/redis-adapter-server.ts',
  'peers/original-consumer.ts',
  'peers/original-server.ts',
];

const children = new Children();
const resources = new Resources();
const startedAt = Date.now();
let aborted = false;
let buildDir: string | undefined;

function print(line: string): void {
  const elapsed = Math.floor((Date.now() - startedAt) / 1000);
  const clock = `${String(Math.floor(elapsed / 60)).padStart(2, '0')}:${String(elapsed % 60).padStart(2, '0')}`;
  process.stdout.write(`[${clock}] ${line}\n`);
}

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  let options: Options;
  try {
    const parsed = parseOptions(args);
    if (parsed === 'help') {
      process.stdout.write(USAGE);
      return 0;
    }
    options = parsed;
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`bench: ${err.message}\n\n${USAGE}`);
    return 2;
  }

  const runId = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
  const machine = machineFacts();
  warnAboutLimits(options, machine.openFilesLimit);
  children.serversOwnSession = options.serverSession === 'own';
  let loadSched: 'SCHED_BATCH' | 'normal' = 'normal';
  if (options.loadSched === 'batch') {
    const why = scheduleSelfAsBatch();
    if (why === undefined) {
      children.scheduleLoadAsBatch();
      loadSched = 'SCHED_BATCH';
    } else {
      print(`warning: the load generator runs with the normal scheduling policy: SCHED_BATCH failed (${why})`);
    }
  }

  let versions: ServiceVersions;
  try {
    versions = await checkServices();
  } catch (err) {
    process.stderr.write(`bench: ${(err as Error).message}\n`);
    return 1;
  }
  if (options.server === 'dist') {
    if (options.build) {
      print('building push-center (npm run build) …');
      const built = spawnSync('npm', ['run', 'build', '--silent'], { cwd: ROOT, stdio: 'inherit' });
      if (built.status !== 0) {
        process.stderr.write('bench: `npm run build` failed; fix the build, or use --server src (runs the sources with tsx) or --no-build\n');
        return 1;
      }
    }
    if (!existsSync(path.join(ROOT, 'dist', 'main.js'))) {
      process.stderr.write('bench: dist/main.js is missing; run `npm run build` or drop --no-build\n');
      return 1;
    }
  }
  buildDir = path.join(BENCH, '.build', runId);
  await build({
    entryPoints: CHILD_ENTRIES.map((entry) => path.join(BENCH, entry)),
    outdir: buildDir,
    outbase: BENCH,
    bundle: true,
    packages: 'external',
    platform: 'node',
    format: 'esm',
    target: 'node20',
    logLevel: 'error',
  });

  const outDir = path.resolve(options.out);
  const profileDir = options.profile ? path.join(outDir, 'profiles') : undefined;
  if (profileDir) mkdirSync(profileDir, { recursive: true });
  const ctx: SystemContext = {
    children,
    root: ROOT,
    buildDir,
    runId,
    resources,
    prefetch: options.prefetch,
    serverMode: options.server,
    serverEnv: options.serverEnv,
    shards: options.shards,
    profileDir,
  };
  const results: TargetResult[] = [];
  const plans = planTargets(options, ctx, results);
  const services = servicePids();
  const noisyClients = (options.others + 1).toLocaleString('en-US');
  const clientsText = options.scenarios.length === 1 && options.scenarios[0] === 'noisy' ? `${noisyClients} clients`
    : `${options.clients.toLocaleString('en-US')} clients${options.scenarios.includes('noisy') ? ` (noisy: ${noisyClients})` : ''}`;
  print(`push-center bench ${runId}: ${options.scenarios.join(', ')}; ${clientsText}; ` +
    `peers: ${options.peers.join(', ') || 'none'}; ${plans.length} systems to run, about ${Math.ceil(estimateSeconds(options, plans) / 60)} min`);
  print(`RabbitMQ ${versions.rabbitmq}, Redis ${versions.redis}, Node.js ${process.version}, ${machine.cpuModel} × ${machine.cores}, ` +
    `load average ${machine.loadAverageAtStart.join(' ')}`);

  try {
    for (const plan of plans) {
      if (aborted) break;
      results.push(await runTarget({
        options,
        children,
        workerModule: path.join(buildDir, 'client-worker.js'),
        root: ROOT,
        print,
        aborted: () => aborted,
        servicePids: services,
      }, plan, label(plan)));
    }
  } finally {
    await cleanUp();
  }

  const output: RunResults = {
    tool: 'push-center bench',
    runId,
    startedAt: new Date(startedAt).toISOString(),
    finishedAt: new Date().toISOString(),
    aborted,
    command: commandLine(args),
    args,
    machine: { ...machine, loadAverageAtEnd: os.loadavg().map((load) => Math.round(load * 100) / 100) },
    versions: { ...versions, node: process.version },
    git: gitFacts(ROOT),
    settings: {
      clients: options.clients,
      client: options.client === 'lean' ? 'lean (bench/lib/lean-socket.ts)' : 'socket.io-client',
      workers: options.workers,
      durationS: options.durationS,
      halfRateDurationS: options.halfDurationS,
      overloadDurationS: options.overloadDurationS,
      prefetch: options.prefetch,
      payloadBytes: PAYLOAD_BYTES,
      persistent: true,
      server: options.server === 'dist' ? 'dist/ (node dist/main.js)' : 'src/ (tsx)',
      quick: options.quick,
      serverEnv: options.serverEnv,
      shards: options.shards,
      loadSched,
      serverSession: options.serverSession,
      noisy: options.scenarios.includes('noisy')
        ? { flood: options.flood, others: options.others, steadyRate: options.steadyRate }
        : undefined,
    },
    targets: results,
  };
  mkdirSync(outDir, { recursive: true });
  const stamp = new Date(startedAt).toISOString().replace(/[:.]/g, '-').slice(0, 19);
  const jsonFile = path.join(outDir, `results-${stamp}.json`);
  const mdFile = path.join(outDir, `results-${stamp}.md`);
  writeFileSync(jsonFile, `${JSON.stringify(output, null, 2)}\n`);
  writeFileSync(mdFile, markdown(output));
  process.stdout.write(terminalSummary(output));
  print(`done in ${Math.round((Date.now() - startedAt) / 1000)} s; results: ${path.relative(process.cwd(), jsonFile)}, ` +
    path.relative(process.cwd(), mdFile));
  if (aborted) return 130;
  // A peer that fails (e.g. runs out of memory without backpressure) is a finding, reported in the
  // tables; the run itself failed only when push-center could not be measured.
  return results.some((r) => r.error && (r.kind === 'push-center' || r.kind === 'two-nodes')) ? 1 : 0;
}

function label(plan: TargetPlan): string {
  const name = plan.spec.key.slice(plan.scenario.length + 1);
  return `[${plan.scenario}/${name}]`.padEnd(26);
}

/** Kills what still runs (by pid), deletes the run's queues and Redis keys and the compiled children. */
async function cleanUp(): Promise<void> {
  const killed = children.killAll();
  if (killed > 0) print(`killed ${killed} process(es) still running`);
  await children.allExited();
  try {
    await resources.releaseAll();
  } catch (err) {
    print(`cleaning up queues / Redis keys failed: ${(err as Error).message}`);
  }
  if (buildDir) {
    rmSync(buildDir, { recursive: true, force: true });
    // The parent too, unless another run is using it.
    if (readdirSync(path.dirname(buildDir)).length === 0) rmSync(path.dirname(buildDir), { recursive: true, force: true });
  }
}

function warnAboutLimits(options: Options, openFiles: number | undefined): void {
  const needed = options.clients + 500;
  if (openFiles !== undefined && openFiles < needed) {
    print(`warning: ulimit -n is ${openFiles}; a server holding ${options.clients} sockets needs about ${needed}. ` +
      `Raise it (e.g. \`ulimit -n 65536\`) or connections will fail with EMFILE.`);
  }
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (low !== undefined && high !== undefined && high - low < options.clients + 1000) {
      print(`warning: only ${high - low} ephemeral ports (net.ipv4.ip_local_port_range) for ${options.clients} clients to one server`);
    }
  } catch {
    // Not Linux: nothing to check.
  }
}

function commandLine(args: string[]): string {
  const quoted = args.map((arg) => (/^[\w.,=:/+-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`)).join(' ');
  if (process.env.npm_lifecycle_event === 'bench') return `npm run bench${quoted ? ` -- ${quoted}` : ''}`;
  return `tsx bench/index.ts${quoted ? ` ${quoted}` : ''}`;
}

function onSignal(signal: NodeJS.Signals): void {
  if (aborted) {
    children.killAll();
    process.exit(130);
  }
  aborted = true;
  print(`${signal}: stopping; killing the bench's processes and removing its queues and keys`);
  children.killAll();
  setTimeout(() => {
    print('clean-up is taking too long; exiting');
    process.exit(130);
  }, 20_000).unref();
}

process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);
process.on('SIGHUP', onSignal);
process.on('exit', () => children.killAll());
process.on('unhandledRejection', (err) => print(`warning: unhandled rejection: ${err instanceof Error ? err.message : String(err)}`));

main().then(
  (code) => process.exit(code),
  async (err: unknown) => {
    process.stderr.write(`bench failed: ${err instanceof Error ? err.stack : String(err)}\n`);
    await cleanUp().catch(() => undefined);
    process.exit(1);
  },
);
