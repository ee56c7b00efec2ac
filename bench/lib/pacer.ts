/**
 * Paces a sender: at a fixed rate, or as fast as its room (e.g. a confirm window) and a gate allow.
 * Sends in bursts from a 2 ms timer, so the sending process stays responsive.
 */

export interface PacePlan {
  mode: 'max' | 'rate';
  /** Messages per second (mode `rate`). */
  rate: number;
  /** Mode `max`: how many more messages may go now; 0 or less holds sending. */
  gate?: () => number;
}

export interface Sender {
  /** Room for one more now. */
  hasRoom(): boolean;
  sendNext(): void;
}

const BURST = 400;
const TICK_MS = 2;
/**
 * At a fixed rate, how far behind its schedule the sender may fall and still catch up. A sender that
 * stalled for longer (its process did not run: the bench shares the machine with what it measures)
 * skips the rest instead of sending it as one burst, which would be a load spike of the bench's own
 * making rather than the steady rate the phase promises.
 */
const CATCH_UP_MS = 20;

export class Pacer {
  sent = 0;
  /** Sends a fixed-rate plan skipped because the sender had fallen more than CATCH_UP_MS behind. */
  skipped = 0;
  private plan: PacePlan = { mode: 'max', rate: 0 };
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private scheduled = false;
  private startedAt = 0;
  private sentAtStart = 0;

  constructor(private readonly sender: Sender) {}

  get active(): boolean {
    return this.running;
  }

  start(plan: PacePlan): void {
    this.stop();
    this.plan = plan;
    this.running = true;
    this.startedAt = Date.now();
    this.sentAtStart = this.sent;
    this.timer = setInterval(() => this.pump(), TICK_MS);
    this.pump();
  }

  stop(): void {
    this.running = false;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Room was freed (a confirm, an ack): send more soon rather than at the next tick. */
  kick(): void {
    if (this.scheduled || !this.running) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.pump();
    });
  }

  private pump(): void {
    if (!this.running) return;
    const { mode, rate, gate } = this.plan;
    let due = mode === 'rate'
      ? Math.floor((rate * (Date.now() - this.startedAt)) / 1000) - (this.sent - this.sentAtStart)
      : Number.POSITIVE_INFINITY;
    if (mode === 'rate') {
      const catchUp = Math.max(1, Math.ceil((rate * CATCH_UP_MS) / 1000));
      if (due > catchUp) {
        this.skipped += due - catchUp;
        this.sentAtStart -= due - catchUp;
        due = catchUp;
      }
    }
    let budget = BURST;
    while (budget > 0 && due > 0 && this.sender.hasRoom() && (mode === 'rate' || !gate || gate() > 0)) {
      this.sender.sendNext();
      this.sent += 1;
      budget -= 1;
      due -= 1;
    }
    if (budget === 0) this.kick();
  }
}
