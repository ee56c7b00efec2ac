import { fork, spawn, spawnSync, type ChildProcess } from 'node:child_process';

/**
 * Every process the bench starts, so that all of them are killed by pid when the bench ends, fails or
 * is interrupted. Each child also watches its parent (a preloaded guard) and kills itself when the
 * bench process disappears without cleaning up (e.g. SIGKILL), so nothing outlives a run.
 */

const PARENT_GUARD = 'data:text/javascript,' + encodeURIComponent(
  'const parent = process.ppid;' +
  "setInterval(() => { if (process.ppid !== parent) process.kill(process.pid, 'SIGKILL'); }, 1000).unref();",
);

export interface Child {
  readonly name: string;
  readonly process: ChildProcess;
  readonly pid: number;
  /** The last lines it wrote to stdout and stderr. */
  output(): string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  alive(): boolean;
  /** How it ended (`exit code 1`, `signal SIGKILL`); undefined while it runs. */
  exitStatus(): string | undefined;
}

const OUTPUT_LINES = 200;
const CHRT = 'chrt';

/** What a child is to the run: a system under test, or part of the load generator (client workers). */
export type Role = 'server' | 'load';

export class Children {
  private readonly live = new Map<number, Child>();
  /**
   * Set when the bench process runs under SCHED_BATCH: children would inherit it, so each starts
   * through `chrt` with its role's policy (servers the normal one, the load generator SCHED_BATCH).
   */
  private batchLoad = false;
  /**
   * Each server (push-center node, peer) starts in a session of its own (setsid), as a service does, so
   * the kernel's autogroup scheduling weighs it as one group against the bench's group (the bench process,
   * which publishes, and the client workers), as it weighs RabbitMQ and Redis, which run in sessions of
   * their own. Off (`--server-session shared`): servers share the bench's session and autogroup, and
   * each competes for CPU with every client worker one to one.
   */
  serversOwnSession = true;

  /** From now on the load generator's children run under SCHED_BATCH and the servers normally. */
  scheduleLoadAsBatch(): void {
    this.batchLoad = true;
  }

  /** A Node.js process without IPC (push-center). */
  spawnNode(name: string, args: string[], env: NodeJS.ProcessEnv, cwd: string, role: Role = 'server'): Child {
    const [command, prefix] = this.launcher(role);
    const child = spawn(command, [...prefix, '--import', PARENT_GUARD, ...args], {
      cwd,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: this.ownSession(role),
    });
    return this.track(name, child);
  }

  /** A Node.js module with an IPC channel (client workers, peers). */
  fork(name: string, modulePath: string, env: NodeJS.ProcessEnv, cwd: string, role: Role = 'server'): Child {
    const [command, prefix] = this.launcher(role);
    const child = fork(modulePath, [], {
      cwd,
      env,
      execPath: command,
      execArgv: [...prefix, '--import', PARENT_GUARD],
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      detached: this.ownSession(role),
    });
    return this.track(name, child);
  }

  /** Node's `detached` on Linux: the child calls setsid(), a new session and so a new autogroup. */
  private ownSession(role: Role): boolean {
    return role === 'server' && this.serversOwnSession;
  }

  /** The program to start and the arguments before Node.js's own (chrt replaces itself with node). */
  private launcher(role: Role): [string, string[]] {
    if (!this.batchLoad) return [process.execPath, []];
    return [CHRT, [role === 'load' ? '--batch' : '--other', '0', process.execPath]];
  }

  /**
   * Waits up to `selfExitMs` for a child that was asked to exit, then SIGTERM, then SIGKILL after
   * `graceMs`; resolves once it has exited.
   */
  async stop(child: Child, graceMs = 5000, selfExitMs = 0): Promise<void> {
    if (!child.alive()) return;
    if (selfExitMs > 0) {
      await Promise.race([child.exited, new Promise((resolve) => setTimeout(resolve, selfExitMs))]);
      if (!child.alive()) return;
    }
    signal(child.pid, 'SIGTERM');
    const timer = setTimeout(() => signal(child.pid, 'SIGKILL'), graceMs);
    await child.exited;
    clearTimeout(timer);
  }

  /** Kills every child still running, at once (synchronous: usable from an 'exit' handler). */
  killAll(): number {
    let killed = 0;
    for (const child of this.live.values()) {
      if (child.alive()) {
        signal(child.pid, 'SIGKILL');
        killed += 1;
      }
    }
    return killed;
  }

  /** Waits until every child has exited (after `killAll`). */
  async allExited(timeoutMs = 5000): Promise<void> {
    const exits = [...this.live.values()].map((child) => child.exited);
    await Promise.race([Promise.all(exits), new Promise((resolve) => setTimeout(resolve, timeoutMs).unref())]);
  }

  running(): Child[] {
    return [...this.live.values()].filter((child) => child.alive());
  }

  private track(name: string, proc: ChildProcess): Child {
    if (proc.pid === undefined) throw new Error(`could not start ${name}`);
    const lines: string[] = [];
    const keep = (chunk: Buffer) => {
      for (const line of chunk.toString().split('\n')) {
        if (line.trim() === '') continue;
        lines.push(line);
        if (lines.length > OUTPUT_LINES) lines.shift();
      }
    };
    proc.stdout?.on('data', keep);
    proc.stderr?.on('data', keep);
    let done = false;
    let status: string | undefined;
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      proc.once('exit', (code, sig) => {
        done = true;
        status = sig ? `signal ${sig}` : `exit code ${code}`;
        this.live.delete(pid);
        resolve({ code, signal: sig });
      });
    });
    proc.on('error', (err) => lines.push(`[spawn error] ${err.message}`));
    const pid = proc.pid;
    const child: Child = {
      name,
      process: proc,
      pid,
      output: () => lines.join('\n'),
      exited,
      alive: () => !done,
      exitStatus: () => status,
    };
    this.live.set(pid, child);
    return child;
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // Already gone.
  }
}

/**
 * Puts every thread of this process under SCHED_BATCH (util-linux `chrt`): a thread woken by a message
 * then waits for its turn instead of preempting the one that sent it. Undefined when done, else why not.
 */
export function scheduleSelfAsBatch(): string | undefined {
  const run = spawnSync(CHRT, ['--all-tasks', '--batch', '--pid', '0', String(process.pid)], { encoding: 'utf8' });
  if (run.error) return `${CHRT}: ${run.error.message}`;
  if (run.status !== 0) return run.stderr.trim() || `${CHRT} exited with ${run.status}`;
  return undefined;
}
