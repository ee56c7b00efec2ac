const REDRAW_MS = 250;

export interface ProgressOptions {
  /** The progress text from the count done so far (default: "sent 120/1000 (12 %), 1,234/s"). */
  describe?: (done: number, total: number, elapsedMs: number) => string;
  /**
   * When the stream is not a terminal: a plain line each time this many more are done (default:
   * nothing), for a log that shows a long run is moving.
   */
  lineEvery?: number;
}

/**
 * The progress of a long run: on a terminal, one line redrawn every 250 ms; elsewhere nothing, or a
 * plain line every `lineEvery`, so logs and pipes get no control characters.
 */
export class Progress {
  private done = 0;
  private shown = false;
  private timer: NodeJS.Timeout | undefined;
  private readonly startedAt = performance.now();
  private readonly describe: NonNullable<ProgressOptions['describe']>;
  private readonly lineEvery: number | undefined;

  constructor(
    private readonly out: NodeJS.WriteStream,
    private readonly total: number,
    enabled: boolean,
    options: ProgressOptions = {},
  ) {
    this.describe = options.describe ?? sentOf;
    const terminal = out.isTTY === true;
    if (enabled && terminal) this.timer = setInterval(() => this.draw(), REDRAW_MS);
    this.lineEvery = enabled && !terminal ? options.lineEvery : undefined;
  }

  add(count: number): void {
    const before = this.done;
    this.done += count;
    if (this.lineEvery !== undefined && Math.floor(before / this.lineEvery) !== Math.floor(this.done / this.lineEvery)) {
      this.out.write(`${this.describe(this.done, this.total, this.elapsedMs)}\n`);
    }
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
    this.out.write(`\r\x1b[K${this.describe(this.done, this.total, this.elapsedMs)}`);
  }
}

function sentOf(sent: number, total: number, elapsedMs: number): string {
  return `sent ${sent}/${total} (${percent(sent, total)} %), ${rate(sent, elapsedMs)}`;
}

/** Whole percent, rounded down (100 only when all is done). */
export function percent(done: number, total: number): number {
  return total > 0 ? Math.floor((100 * done) / total) : 100;
}

/** "1,234/s" */
export function rate(count: number, elapsedMs: number): string {
  const perSecond = elapsedMs > 0 ? Math.round((count * 1000) / elapsedMs) : count;
  return `${perSecond.toLocaleString('en-US')}/s`;
}
