#!/usr/bin/env node
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { constants } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CliError, parseOptions, UsageError, type Terminal } from './terminal.js';

/**
 * `push-center`: the command line of the package (bin). Commands are loaded when run, so `--help`
 * stays instant and `start` loads nothing but the node.
 *
 * Exit codes: 0 done, 1 failed (the message says why and what to check), 2 bad usage.
 */

/** The package root, from this file's place: `src/cli/` when run from the sources, `dist/cli/` when built. */
const ROOT = fileURLToPath(new URL('../../', import.meta.url));

const USAGE = `Usage: push-center <command> [options]

Commands:
  start            run a push-center node, like \`npm start\` (settings from the environment)
  send             publish a notification over HTTP or to RabbitMQ
  dead-letters     list what is in the dead-letter queue, or replay it to the work queue
  receipts         follow the notifications' outcomes as the nodes publish them
  bench [args]     run the benchmark (from a source checkout)
  help [command]   this text, or a command's

Options:
  -h, --help       this text
  -v, --version    the version

Run 'push-center <command> --help' for a command's options.
`;

const START_USAGE = `Usage: push-center start

Runs one push-center node until SIGTERM or SIGINT (graceful stop, exit 0; a second signal exits at once).
Settings come from the environment over config/default.json (see the README's configuration table), e.g.

  PORT=3000 HOST=0.0.0.0                                    where HTTP and socket.io listen
  AMQP_URL=amqp://guest:guest@127.0.0.1:5672                RabbitMQ (unset: embedded queue, not durable)
  REDIS_URL=redis://127.0.0.1:6379                          Redis (unset: in-memory inbox, one node)
  REDIS_URL=redis+cluster://10.0.0.1:7000,10.0.0.2:7000     or a Redis Cluster, by any of its nodes
  AUTH_JWT_SECRET=... or AUTH_JWT_PUBLIC_KEY=...            socket authentication
  API_KEYS=backend-7Hq2:publish,dashboard-Xp9:read+admin    keys for the /v1 HTTP routes, with their scopes
  LOG_LEVEL=info                                            fatal … trace, silent

A bad setting stops start-up with a message naming it (exit 1).
`;

const BENCH_USAGE = `Usage: push-center bench [benchmark options]

Runs the benchmark of a source checkout (bench/index.ts, through tsx) with the arguments given, as
\`npm run bench -- [options]\` does; 'push-center bench --help' lists its options. It needs RabbitMQ
and Redis on this machine.
`;

const BENCH_ELSEWHERE = `The benchmark is not part of the installed package: it lives in push-center's source repository,
in bench/. To run it, in a checkout of the repository (RabbitMQ and Redis running on this machine):

  npm ci
  npm run bench -- --help       its options
  npm run bench -- --quick      a short smoke run

or 'npx push-center bench [options]' from inside the checkout.
`;

interface Command {
  usage(): Promise<string>;
  /** Resolves with the exit code, or `undefined` when the command now owns the process (a running node). */
  run(args: string[], term: Terminal): Promise<number | undefined>;
}

const COMMANDS: Record<string, Command> = {
  start: {
    usage: async () => START_USAGE,
    run: start,
  },
  send: {
    usage: async () => (await import('./send.js')).SEND_USAGE,
    run: async (args, term) => (await import('./send.js')).runSend(args, term),
  },
  'dead-letters': {
    usage: async () => (await import('./dead-letters.js')).DEAD_LETTERS_USAGE,
    run: async (args, term) => (await import('./dead-letters.js')).runDeadLetters(args, { ...term, interrupted: interruption() }),
  },
  receipts: {
    usage: async () => (await import('./receipts.js')).RECEIPTS_USAGE,
    run: async (args, term) => (await import('./receipts.js')).runReceipts(args, { ...term, interrupted: interruption() }),
  },
  bench: {
    usage: async () => BENCH_USAGE,
    run: bench,
  },
};

async function main(argv: string[], term: Terminal): Promise<number | undefined> {
  const [name, ...args] = argv;
  let command: Command | undefined;
  try {
    if (name === undefined || name === '--help' || name === '-h') {
      term.stdout.write(USAGE);
      return 0;
    }
    if (name === '--version' || name === '-v') {
      term.stdout.write(`${version()}\n`);
      return 0;
    }
    if (name === 'help') {
      const topic = args[0];
      term.stdout.write(topic === undefined ? USAGE : await known(topic).usage());
      return 0;
    }
    if (name.startsWith('-')) throw new UsageError(`unknown option '${name}'`);
    command = known(name);
    return await command.run(args, term);
  } catch (err) {
    const prefix = command ? `push-center ${name}` : 'push-center';
    if (!(err instanceof CliError)) {
      term.stderr.write(`${prefix}: unexpected error: ${(err as Error).stack ?? String(err)}\n`);
      return 1;
    }
    term.stderr.write(`${prefix}: ${err.message}\n`);
    if (err instanceof UsageError) term.stderr.write(`Run '${prefix} --help' for usage.\n`);
    return err.exitCode;
  }
}

function known(name: string): Command {
  const command = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!command) throw new UsageError(`unknown command '${name}'; the commands are ${Object.keys(COMMANDS).join(', ')}`);
  return command;
}

function version(): string {
  try {
    return (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/** The very entry `npm start` runs (src/main.ts, dist/main.js): it reads the environment and handles signals. */
async function start(args: string[], term: Terminal): Promise<number | undefined> {
  if (parseOptions(args, { help: { type: 'boolean', short: 'h' } }).help) {
    term.stdout.write(START_USAGE);
    return 0;
  }
  await import('../main.js');
  return undefined;
}

/**
 * Aborted on the first SIGINT or SIGTERM, for a command that stops cleanly between two steps; a second
 * signal exits at once.
 */
function interruption(): AbortSignal {
  const controller = new AbortController();
  const onSignal = (signal: NodeJS.Signals): void => {
    if (controller.signal.aborted) process.exit(128 + constants.signals[signal]);
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return controller.signal;
}

/** Hands over to the benchmark of a source checkout; its exit code becomes ours. */
async function bench(args: string[], term: Terminal): Promise<number> {
  if (!existsSync(join(ROOT, 'bench', 'index.ts'))) {
    term.stdout.write(BENCH_ELSEWHERE);
    return 0;
  }
  const child = spawn('npx', ['tsx', 'bench/index.ts', ...args], { cwd: ROOT, stdio: 'inherit' });
  // Ctrl-C reaches the whole process group, the benchmark included, which stops itself and cleans up:
  // this process waits for it. A SIGTERM sent to this process alone is passed on.
  process.on('SIGINT', () => undefined);
  process.on('SIGTERM', () => child.kill('SIGTERM'));
  return new Promise<number>((resolve, reject) => {
    child.once('error', (err) => reject(new CliError(`cannot run the benchmark (npx tsx bench/index.ts in ${ROOT}): ` +
      `${err.message}; is npm on the PATH, and were the dependencies installed (npm ci)?`)));
    child.once('exit', (code, signal) => resolve(code ?? 128 + (signal ? constants.signals[signal] : 0)));
  });
}

const terminal: Terminal = { env: process.env, stdin: process.stdin, stdout: process.stdout, stderr: process.stderr };
void main(process.argv.slice(2), terminal).then((code) => {
  // stdout and stderr are synchronous on Linux for files, pipes and terminals: nothing written is lost.
  // Exiting at once, rather than when the event loop drains, so that no idle connection delays it.
  if (code !== undefined) process.exit(code);
});
