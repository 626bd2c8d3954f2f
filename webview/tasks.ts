// Scheduling on the panel's main thread: short tasks, so frames keep coming while a run streams in,
// and repaints coalesced to one per frame.

/** Yields to the event loop without setTimeout's 4 ms clamp: runs `fn` in a task of its own. */
export function makeYield(): (fn: () => void) => void {
  const ch = new MessageChannel();
  const queue: (() => void)[] = [];
  ch.port1.onmessage = () => {
    const fn = queue.shift();
    if (fn) fn();
  };
  return (fn) => {
    queue.push(fn);
    ch.port2.postMessage(0);
  };
}

/** How long one task reads queued messages before it yields. */
const INBOX_SLICE_MS = 12;

/**
 * Hands window messages to `handle` in order, in time-boxed tasks. Chromium decodes a message when
 * its data is first read, and a layer from another process (VS Code desktop hosts the panel in
 * one) takes about 8 ms per MB: read in each message's own task, a run's messages queue back to
 * back ahead of rendering and hold frames for 100 ms. Here each message task only queues the
 * event, and the reading runs in slices that leave room for frames.
 */
export function listenInOrder(handle: (data: unknown) => void): void {
  const inbox: MessageEvent[] = [];
  const later = makeYield();
  const drain = (): void => {
    const t0 = performance.now();
    try {
      do handle(inbox.shift()!.data);
      while (inbox.length > 0 && performance.now() - t0 < INBOX_SLICE_MS);
    } finally {
      // A message that throws must not strand the ones behind it.
      if (inbox.length > 0) later(drain);
    }
  };
  window.addEventListener('message', (e: MessageEvent) => {
    inbox.push(e);
    if (inbox.length === 1) later(drain);
  });
}

/** The next animation frame, as a `later` for Coalesced. */
export const nextFrame = (fn: () => void): void => void requestAnimationFrame(fn);

/**
 * Runs `work` once at the next opportunity `later` gives (by default the next animation frame),
 * however often it is requested before then: the views and the app ask for repaints on every
 * pointer move, scroll and arriving layer, and one paint per frame covers them all.
 */
export class Coalesced {
  private pending = false;
  /** Bumped by cancel(), so a callback already handed to `later` knows it was withdrawn. */
  private ticket = 0;

  constructor(
    private readonly work: () => void,
    private readonly later: (fn: () => void) => void = nextFrame,
  ) {}

  request(): void {
    if (this.pending) return;
    this.pending = true;
    const ticket = this.ticket;
    this.later(() => {
      if (ticket !== this.ticket) return;
      this.pending = false;
      this.work();
    });
  }

  cancel(): void {
    if (!this.pending) return;
    this.pending = false;
    this.ticket++;
  }

  /** Runs the work now and drops the pending request: for callers already inside a frame. */
  runNow(): void {
    this.cancel();
    this.work();
  }
}
