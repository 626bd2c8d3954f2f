// The host's queue of messages to the panel. A run at T=512 is 67 MB of attention; posting it all
// at once lets VS Code copy every byte into its IPC while the panel reads 1 MB at a time, so runs
// fired in a row (live updates, repeated Show Attention) pile up in the host's memory and the
// panel steps through stale runs long after the newest one is done. Here:
// - attention goes out with at most `windowBytes` unread by the panel (it acks what it read);
// - a newer run drops whatever an older one has not sent yet, attention and the rest alike.
// Messages keep their order. Nothing here imports vscode: `send` is the panel's postMessage.

import type { HostToWebview } from '../protocol/webview';

/** Unread attention allowed in flight: a few layers' parts, enough to keep the panel busy. */
export const WINDOW_BYTES = 8 << 20;

export interface OutboxStats {
  /** Messages handed to `send`, and their attention bytes. */
  sent: number;
  sentBytes: number;
  /** Messages of older runs dropped before they were sent, and their attention bytes. */
  dropped: number;
  droppedBytes: number;
}

export class Outbox {
  private readonly queue: HostToWebview[] = [];
  /** Attention bytes sent and not yet acknowledged by the panel. */
  private unread = 0;
  /** The newest run seen: messages of older runs are not sent. */
  private newest = -1;
  readonly stats: OutboxStats = { sent: 0, sentBytes: 0, dropped: 0, droppedBytes: 0 };

  constructor(
    private readonly send: (m: HostToWebview) => void,
    private readonly windowBytes = WINDOW_BYTES,
  ) {}

  push(m: HostToWebview): void {
    if (m.type === 'run/start') this.supersede(m.runId);
    const runId = runOf(m);
    if (runId !== null && runId < this.newest) return this.drop(m);
    this.queue.push(m);
    this.flush();
  }

  /** A newer run begins: what older runs have not sent yet is dropped now, before its start arrives. */
  supersede(runId: number): void {
    if (runId <= this.newest) return;
    this.newest = runId;
    const keep = this.queue.filter((m) => {
      const r = runOf(m);
      if (r === null || r >= runId) return true;
      this.drop(m);
      return false;
    });
    this.queue.splice(0, this.queue.length, ...keep);
    this.flush();
  }

  /** The panel read `bytes` of attention. */
  ack(bytes: number): void {
    this.unread = Math.max(0, this.unread - bytes);
    this.flush();
  }

  /** Messages waiting, and attention bytes unread by the panel (for tests and the benchmark). */
  get backlog(): { queued: number; unread: number } {
    return { queued: this.queue.length, unread: this.unread };
  }

  clear(): void {
    this.queue.length = 0;
    this.unread = 0;
  }

  private flush(): void {
    while (this.queue.length) {
      const bytes = attentionBytes(this.queue[0]);
      // One message always goes when nothing is unread, however large it is.
      if (bytes > 0 && this.unread > 0 && this.unread + bytes > this.windowBytes) return;
      const m = this.queue.shift()!;
      this.unread += bytes;
      this.stats.sent++;
      this.stats.sentBytes += bytes;
      this.send(m);
    }
  }

  private drop(m: HostToWebview): void {
    this.stats.dropped++;
    this.stats.droppedBytes += attentionBytes(m);
  }
}

/** The run a message belongs to, or null for messages of no run (status). */
function runOf(m: HostToWebview): number | null {
  return 'runId' in m ? m.runId : null;
}

/** Attention bytes a message carries (what the panel acknowledges). */
export function attentionBytes(m: HostToWebview): number {
  return m.type === 'run/layer' || m.type === 'run/thumbs' ? m.data.byteLength : 0;
}
