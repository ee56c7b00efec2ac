const REDRAW_MS = 250;

/**
 * The progress of a long send on a terminal: one line, redrawn every 250 ms, with sent/total and the
 * rate. Off when the stream is not a terminal, so logs and pipes get no control characters.
 */
export class Progress {
  private sent = 0;
  private shown = false;
  private timer: NodeJS.Timeout | undefined;
  private readonly startedAt = performance.now();

  constructor(
    private readonly out: NodeJS.WriteStream,
    private readonly total: number,
    enabled: boolean,
  ) {
    if (enabled && out.isTTY === true) this.timer = setInterval(() => this.draw(), REDRAW_MS);
  }

  add(count: number): void {
    this.sent += count;
  }

  get elapsedMs(): number {
    return performance.now() - this.startedAt;
  }

  /** Stops redrawing. `keep`: the final state stays as a summary line; else the line is erased. */
  stop(keep: boolean): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (!this.shown) return;
    if (keep) {
      this.draw();
      this.out.write('\n');
    } else {
      this.out.write('\r\x1b[K');
    }
  }

  private draw(): void {
    this.shown = true;
    const percent = Math.floor((100 * this.sent) / this.total);
    this.out.write(`\r\x1b[Ksent ${this.sent}/${this.total} (${percent} %), ${rate(this.sent, this.elapsedMs)}`);
  }
}

/** "1,234/s" */
export function rate(count: number, elapsedMs: number): string {
  const perSecond = elapsedMs > 0 ? Math.round((count * 1000) / elapsedMs) : count;
  return `${perSecond.toLocaleString('en-US')}/s`;
}
