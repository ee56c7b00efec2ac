import { fork, spawn, type ChildProcess } from 'node:child_process';

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
}

const OUTPUT_LINES = 200;

export class Children {
  private readonly live = new Map<number, Child>();

  /** A Node.js process without IPC (push-center). */
  spawnNode(name: string, args: string[], env: NodeJS.ProcessEnv, cwd: string): Child {
    const child = spawn(process.execPath, ['--import', PARENT_GUARD, ...args], {
      cwd,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return this.track(name, child);
  }

  /** A Node.js module with an IPC channel (client workers, peers). */
  fork(name: string, modulePath: string, env: NodeJS.ProcessEnv, cwd: string): Child {
    const child = fork(modulePath, [], {
      cwd,
      env,
      execArgv: ['--import', PARENT_GUARD],
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    return this.track(name, child);
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
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      proc.once('exit', (code, sig) => {
        done = true;
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
