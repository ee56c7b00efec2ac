import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { redact } from '../util/redact.js';

/**
 * Runs N push-center nodes on this machine, each on its own port (3001, 3002, …) with its own NODE_ID,
 * sharing one RabbitMQ queue and one Redis: a local cluster for development and demos.
 *
 *   npm run cluster -- 3 [--port 3001]
 *
 * AMQP_URL and REDIS_URL default to the local servers. Ctrl-C stops every node gracefully.
 */
const args = process.argv.slice(2);
const count = Number(args.find((arg) => /^\d+$/.test(arg)) ?? 3);
const portIndex = args.indexOf('--port');
const basePort = portIndex >= 0 ? Number(args[portIndex + 1]) : 3001;
if (!Number.isInteger(count) || count < 1 || count > 32 || !Number.isInteger(basePort) || basePort < 1) {
  process.stderr.write('usage: npm run cluster -- [nodes 1..32] [--port first-port]\n');
  process.exit(2);
}

const amqpUrl = process.env.AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const env: NodeJS.ProcessEnv = { ...process.env, AMQP_URL: amqpUrl, REDIS_URL: redisUrl };
const main = fileURLToPath(new URL('../main.js', import.meta.url));
const nodes: ChildProcess[] = [];
let stopping = false;

process.stdout.write(`starting ${count} nodes on ports ${basePort}..${basePort + count - 1} ` +
  `(AMQP_URL=${redact(amqpUrl)}, REDIS_URL=${redact(redisUrl)})\n`);
for (let i = 0; i < count; i++) {
  const name = `node-${i + 1}`;
  const child = spawn(process.execPath, [main], {
    env: { ...env, PORT: String(basePort + i), NODE_ID: env.NODE_ID ? `${env.NODE_ID}-${i + 1}` : name },
    stdio: ['ignore', 'pipe', 'pipe'],
    // A process group of its own: Ctrl-C reaches only this runner, which stops each node once, gracefully.
    detached: true,
  });
  const prefix = (chunk: Buffer) => chunk.toString().split('\n').filter(Boolean).map((line) => `[${name}] ${line}\n`).join('');
  child.stdout!.on('data', (chunk: Buffer) => process.stdout.write(prefix(chunk)));
  child.stderr!.on('data', (chunk: Buffer) => process.stderr.write(prefix(chunk)));
  child.on('exit', (code, signal) => {
    process.stdout.write(`[${name}] exited (${signal ?? code})\n`);
    if (nodes.every((node) => node.exitCode !== null || node.signalCode !== null)) process.exit(stopping ? 0 : 1);
  });
  nodes.push(child);
}

const stop = (signal: NodeJS.Signals) => {
  if (stopping) return;
  stopping = true;
  process.stdout.write(`${signal}: stopping every node\n`);
  for (const node of nodes) if (node.exitCode === null) node.kill('SIGTERM');
};
process.on('SIGINT', () => stop('SIGINT'));
process.on('exit', () => {
  for (const node of nodes) if (node.exitCode === null) node.kill('SIGKILL');
});
process.on('SIGTERM', () => stop('SIGTERM'));
