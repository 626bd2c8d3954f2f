// Host-side handle on the engine worker: one run at a time (a new one supersedes the old),
// cancellation, explains beside the runs (they neither supersede nor are superseded), and recovery: if the worker dies, pending requests fail with WORKER_CRASHED and the
// next request starts a fresh worker. A cancel is answered at once; if the worker has not really
// stopped the cancelled work within a grace period (stuck in a native call or a loop that never
// looks at the abort signal), the worker is terminated, and a request sent meanwhile is re-sent to
// a fresh one.
import { Worker } from 'node:worker_threads';
import { EngineError, type EngineOptions, type LoadProgress, type Timings } from './types';
import type { AttentionEncoding, AttentionPayload, ExplainCell, Explanation, RowsData, ValueNormsData } from '../protocol/attention';
import type { AnalyzeRequest, HostToWorker, RowsRequest, WorkerToHost } from '../protocol/worker';

/** How long a cancelled request may take to stop before its worker is terminated. */
export const CANCEL_GRACE_MS = 2000;

export type RunStart = Extract<WorkerToHost, { type: 'start' }>;

export interface RunHandlers {
  onProgress?: (p: LoadProgress) => void;
  onStart?: (start: RunStart) => void;
  /** A layer (bit-packed f16 when it fits, as the panel takes it) or, before the layers and only when T is above their size, a layer's thumbnails. */
  onPayload?: (payload: AttentionPayload) => void;
}

export interface RunHandle {
  requestId: number;
  /** Resolves with the timings when the last layer arrived; rejects with an EngineError. */
  done: Promise<{ timings: Timings; start: RunStart }>;
  cancel(): void;
}

/** What explain asks: the run's model, text and limits (and engine options, by default the client's) as analyze had them, and the cell. */
export type ExplainRequest = Omit<AnalyzeRequest, 'encoding'> & { cell: ExplainCell; options?: EngineOptions };

/** What values asks: the run's model, text and limits (and engine options) as analyze had them. */
export type ValuesRequest = Omit<AnalyzeRequest, 'encoding'> & { options?: EngineOptions };

interface PendingBase {
  /** The request as sent, to send again to a fresh worker if a stuck one is terminated. */
  message: HostToWorker;
  reject: (e: EngineError) => void;
}

interface PendingRun extends PendingBase {
  kind: 'run';
  handlers: RunHandlers;
  start?: RunStart;
  resolve: (v: { timings: Timings; start: RunStart }) => void;
}

/** An explain or value-norms request: answered by one message from the run's capture. */
interface PendingCapture extends PendingBase {
  kind: 'capture';
  onProgress?: (p: LoadProgress) => void;
  answer: (msg: WorkerToHost) => boolean;
}

type Pending = PendingRun | PendingCapture;

export class EngineClient {
  private worker: Worker | null = null;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  /** Cancelled requests the worker has not yet settled, each with the timer that terminates it. */
  private readonly stopping = new Map<number, ReturnType<typeof setTimeout>>();

  constructor(
    private readonly workerPath: string,
    private options: EngineOptions,
    private readonly workerOptions: { testHooks?: boolean; execArgv?: string[]; cancelGraceMs?: number } = {},
  ) {}

  /** The worker thread's id, or null when none runs (before the first request, after a crash or a termination). */
  get workerThreadId(): number | null {
    return this.worker?.threadId ?? null;
  }

  setOptions(options: EngineOptions): void {
    this.options = options;
  }

  analyze(request: Omit<AnalyzeRequest, 'encoding'> & { encoding?: AttentionEncoding }, handlers: RunHandlers = {}): RunHandle {
    // Superseding: the caller only ever wants the newest result.
    for (const [id, p] of this.pending) {
      if (p.kind !== 'run') continue;
      this.pending.delete(id);
      p.reject(new EngineError('SUPERSEDED', 'A newer request replaced this one.'));
    }
    const requestId = this.nextId++;
    const message: HostToWorker = { type: 'analyze', requestId, options: this.options, ...request, encoding: request.encoding ?? 'f16' };
    const done = new Promise<{ timings: Timings; start: RunStart }>((resolve, reject) => {
      this.pending.set(requestId, { kind: 'run', message, handlers, resolve, reject });
    });
    this.send(message);
    return { requestId, done, cancel: () => this.cancel(requestId) };
  }

  /**
   * "Why this weight?": the head's computation for one cell of the text a run analysed (the same
   * model, text and limits give the same tokens). The worker answers after the run in flight, from
   * its last capture when the run is the same; rejects with an EngineError (ATTENTION_UNSUPPORTED
   * for a model whose queries, keys and values cannot be captured).
   */
  explain(request: ExplainRequest, onProgress?: (p: LoadProgress) => void): Promise<Explanation> {
    const requestId = this.nextId++;
    const message: HostToWorker = { type: 'explain', requestId, ...request, options: request.options ?? this.options };
    return this.capture(message, onProgress, (m) => (m.type === 'explained' ? m.explanation : undefined));
  }

  /**
   * The value norms of the text a run analysed (value-weighted attention), from the same capture as
   * explain: after the run in flight, reusing the last capture when the run is the same.
   */
  values(request: ValuesRequest, onProgress?: (p: LoadProgress) => void): Promise<ValueNormsData> {
    const requestId = this.nextId++;
    const message: HostToWorker = { type: 'values', requestId, ...request, options: request.options ?? this.options };
    return this.capture(message, onProgress, (m) => (m.type === 'values' ? m.data : undefined));
  }

  /**
   * Rows of the latest long run (`request.run`: its RunHandle's requestId), computed over its
   * key/value cache after its stream; rejects with SUPERSEDED when a newer run replaced it.
   */
  rows(request: RowsRequest): Promise<RowsData> {
    const requestId = this.nextId++;
    return this.capture({ type: 'rows', requestId, ...request }, undefined, (m) => (m.type === 'rows' ? m.rows : undefined));
  }

  private capture<A>(message: Extract<HostToWorker, { requestId: number }>, onProgress: ((p: LoadProgress) => void) | undefined, pick: (m: WorkerToHost) => A | undefined): Promise<A> {
    const answer = new Promise<A>((resolve, reject) => {
      const answer = (m: WorkerToHost) => {
        const a = pick(m);
        if (a !== undefined) resolve(a);
        return a !== undefined;
      };
      this.pending.set(message.requestId, { kind: 'capture', message, onProgress, answer, reject });
    });
    this.send(message);
    return answer;
  }

  cancel(requestId: number): void {
    const p = this.pending.get(requestId);
    if (!p) return;
    this.pending.delete(requestId);
    p.reject(new EngineError('CANCELLED', 'Cancelled.'));
    if (this.worker) {
      this.worker.postMessage({ type: 'cancel', requestId } satisfies HostToWorker);
      this.watchStop(requestId);
    }
    this.updateRef();
  }

  /** Terminates the worker if the cancelled request's work does not settle within the grace period. */
  private watchStop(requestId: number): void {
    const worker = this.worker;
    const timer = setTimeout(() => {
      this.stopping.delete(requestId);
      if (this.worker === worker) this.restartStuckWorker();
    }, this.workerOptions.cancelGraceMs ?? CANCEL_GRACE_MS);
    timer.unref();
    this.stopping.set(requestId, timer);
  }

  private clearStopping(): void {
    for (const timer of this.stopping.values()) clearTimeout(timer);
    this.stopping.clear();
  }

  /** The worker did not stop cancelled work: terminate it (that ends whatever it was spinning on) and re-send the requests it held. */
  private restartStuckWorker(): void {
    const stuck = this.worker;
    this.worker = null; // before terminate(): its exit is not a crash of the pending requests
    this.clearStopping();
    void stuck?.terminate();
    for (const p of this.pending.values()) {
      if (p.kind === 'run') p.start = undefined;
      this.send(p.message);
    }
  }

  /** Test hook: make the worker throw an uncaught error. */
  injectCrash(): void {
    this.send({ type: 'crash' });
  }

  async dispose(): Promise<void> {
    this.clearStopping();
    for (const [id, p] of this.pending) {
      this.pending.delete(id);
      p.reject(new EngineError('CANCELLED', 'The engine was shut down.'));
    }
    const w = this.worker;
    this.worker = null;
    await w?.terminate();
  }

  private send(msg: HostToWorker): void {
    this.ensureWorker().postMessage(msg);
    this.updateRef();
  }

  /** An idle worker (model loaded, nothing pending) must not keep the process alive on its own. */
  private updateRef(): void {
    if (this.pending.size) this.worker?.ref();
    else this.worker?.unref();
  }

  private ensureWorker(): Worker {
    if (this.worker) return this.worker;
    const worker = new Worker(this.workerPath, {
      workerData: { testHooks: this.workerOptions.testHooks === true },
      execArgv: this.workerOptions.execArgv,
    });
    worker.on('message', (msg: WorkerToHost) => {
      if (this.worker !== worker) return; // a terminated worker's last words
      if (msg.type === 'settled') this.settled(msg.requestId);
      else this.onMessage(msg);
    });
    const fail = (why: string) => {
      if (this.worker !== worker) return;
      this.worker = null;
      this.clearStopping();
      for (const [id, p] of this.pending) {
        this.pending.delete(id);
        p.reject(new EngineError('WORKER_CRASHED', `The attention engine stopped unexpectedly (${why}). Run the command again to restart it.`));
      }
    };
    worker.on('error', (e) => fail(e.message));
    worker.on('exit', (code) => fail(`exit code ${code}`));
    this.worker = worker;
    return worker;
  }

  private settled(requestId: number): void {
    const timer = this.stopping.get(requestId);
    if (timer === undefined) return;
    clearTimeout(timer);
    this.stopping.delete(requestId);
  }

  /**
   * The worker posts a run's layers back to back and Node delivers them in one event-loop turn;
   * each handler stores a layer and forwards it to the panel (VS Code copies 6 MB per layer at
   * T=512). Delivering one message per turn, in order, keeps the host's event loop responsive.
   */
  private readonly inbox: WorkerToHost[] = [];
  private draining = false;

  private onMessage(msg: WorkerToHost): void {
    this.inbox.push(msg);
    if (this.draining) return;
    this.draining = true;
    setImmediate(() => this.drain());
  }

  private drain(): void {
    const msg = this.inbox.shift();
    if (msg) this.deliver(msg);
    if (this.inbox.length) setImmediate(() => this.drain());
    else this.draining = false;
  }

  private deliver(msg: WorkerToHost): void {
    const p = this.pending.get(msg.requestId);
    if (!p) return; // cancelled or superseded: late messages are dropped
    if (msg.type === 'done' || msg.type === 'explained' || msg.type === 'values' || msg.type === 'rows' || msg.type === 'error') queueMicrotask(() => this.updateRef());
    if (msg.type === 'error') {
      this.pending.delete(msg.requestId);
      p.reject(new EngineError(msg.code, msg.message));
    } else if (p.kind === 'capture') {
      if (msg.type === 'progress') p.onProgress?.(msg.progress);
      else if (p.answer(msg)) this.pending.delete(msg.requestId);
    } else {
      switch (msg.type) {
        case 'progress':
          p.handlers.onProgress?.(msg.progress);
          break;
        case 'start':
          p.start = msg;
          p.handlers.onStart?.(msg);
          break;
        case 'payload':
          p.handlers.onPayload?.(msg.payload);
          break;
        case 'done':
          this.pending.delete(msg.requestId);
          p.resolve({ timings: msg.timings, start: p.start! });
          break;
      }
    }
  }
}
