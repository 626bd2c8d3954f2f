// Chromium-side helpers of the benchmark: the real built panel (test/webview/harness.ts: the
// bundle out/webview/main.js + panel.css under the panel's CSP), staging real layers in the page,
// feeding the extension's exact message sequence and timing it to painted frames, hover latency,
// and the page's heap through the DevTools protocol.
import type { Browser, CDPSession, Page } from 'playwright-core';
import { ensureBuilt, frames, launch, openFramedPanel, openPanel, stageBuffer, type FramedPanel, type PanelPage } from '../test/webview/harness';

export { openFramedPanel };

export { frames };
import type { RealRun } from './real-run';

export { launch };

/** Opens the panel page (CSP, theme, acquireVsCodeApi stub) on the freshly built bundle. */
export async function openBenchPanel(browser: Browser, viewport = { width: 1100, height: 760 }): Promise<PanelPage> {
  ensureBuilt();
  const p = await openPanel(browser, { viewport });
  await installProbes(p.page);
  return p;
}

/** A plain page (no CSP) on an https origin, for the transfer measurements; `pages`: more URLs to serve (HTML bodies). */
export async function openPlainPage(browser: Browser, pages: Record<string, string> = {}): Promise<{ page: Page; close(): Promise<void> }> {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.addInitScript('window.__name = (f) => f;');
  const html = (body: string) => `<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>${body}</body></html>`;
  await page.route('https://bench.test/**', (route) => route.fulfill({ status: 200, contentType: 'text/html', body: html('') }));
  for (const [url, body] of Object.entries(pages)) await page.route(url, (route) => route.fulfill({ status: 200, contentType: 'text/html', body: html(body) }));
  await page.goto('https://bench.test/');
  return { page, close: () => context.close() };
}

/** run/thumbs or run/layer without its runId and data: what is staged beside each buffer. */
type StagedData = Omit<RealRun['wire'][number], 'runId' | 'data'>;

/** What stageRun leaves in the page: the run's message sequence for a runId (staged buffers, not copies), and how the host paces it. */
export type StagedWindow = {
  __runMessages(runId: number): unknown[];
  /**
   * Posts the run as the extension does: run/start (sent before the forward pass), then, the
   * forward pass's time later, onData() and the rest at once.
   */
  __postRun(runId: number, post: (m: unknown) => void, onData: () => void): Promise<void>;
  /** How long run/start leads (ms): the engine's forward time unless a caller changes it. */
  __leadMs: number;
};

/**
 * Copies the run's messages as the host posts them into the page (the layers' ArrayBuffers through
 * stageBuffer: base64 crosses the DevTools protocol fastest) and defines window.__runMessages(runId):
 * run/start, the run/thumbs and run/layer messages, run/done and the closing status, in the host's
 * order; and window.__postRun, which paces them (run/start leads by the engine's forward time).
 */
export async function stageRun(page: Page, run: RealRun): Promise<void> {
  for (let i = 0; i < run.wire.length; i++) await stageBuffer(page, i, new Uint8Array(run.wire[i].data));
  await page.evaluate(
    ([start, layers, done, leadMs]) => {
      const w = window as unknown as StagedWindow & { __stage: ArrayBuffer[] };
      const stage = w.__stage.slice(0, layers.length);
      w.__runMessages = (runId) => [
        { ...start, runId },
        ...layers.map((m, i) => ({ ...m, runId, data: stage[i] })),
        { ...done, runId },
        { type: 'status', message: null },
      ];
      w.__leadMs = leadMs;
      w.__postRun = (runId, post, onData) =>
        new Promise((resolve) => {
          const [first, ...rest] = w.__runMessages(runId);
          post(first);
          setTimeout(() => {
            onData();
            for (const m of rest) post(m);
            resolve();
          }, w.__leadMs);
        });
    },
    [run.start, run.wire.map(({ runId: _, data: __, ...rest }): StagedData => rest), run.done, run.result.timings.forwardMs] as const,
  );
}

/**
 * Page-side instrumentation: which canvas was last cleared when (the head view's lines and the
 * matrix overlay start every repaint with clearRect), and a "next painted frame" helper.
 */
async function installProbes(page: Page): Promise<void> {
  await page.evaluate(() => {
    const w = window as unknown as { __clears: Map<HTMLCanvasElement, number>; __probesInstalled?: boolean };
    if (w.__probesInstalled) return;
    w.__probesInstalled = true;
    w.__clears = new Map();
    const proto = CanvasRenderingContext2D.prototype;
    const clearRect = proto.clearRect;
    proto.clearRect = function (this: CanvasRenderingContext2D, x: number, y: number, wd: number, h: number) {
      w.__clears.set(this.canvas, performance.now());
      return clearRect.call(this, x, y, wd, h);
    };
  });
}

/** Times from the first message with attention (the forward pass has finished: run/start went out before it). */
export interface FeedTiming {
  runId: number;
  /** First attention message posted -> the frame after the first layer was painted (model view). */
  firstLayerMs: number;
  /** First attention message posted -> the frame after every layer was painted. */
  allLayersMs: number;
  /** First attention message posted -> performance.mark('attention-lens:painted:<runId>'). */
  allLayersMarkMs: number | null;
  /**
   * First attention message posted -> the last full layer stored (#app[data-complete-run]). Later
   * than allLayersMs when the grid was painted from thumbnails and the layers were still arriving.
   */
  allDataMs: number;
  /** Time spent posting (structured clone of the messages) before the first handler ran. */
  postMs: number;
}

/**
 * Posts the extension's message sequence for one run the way VS Code delivers it (window.postMessage,
 * paced by __postRun: run/start, then the forward pass's time later run/thumbs x L when sent,
 * run/layer x L with cloned ArrayBuffers, run/done, status), and times it to painted frames: the
 * app sets #app[data-painted-layers] / [data-painted-run] and a performance mark.
 */
export async function feedRun(page: Page, runId: number, timeoutMs = 60_000): Promise<FeedTiming> {
  return page.evaluate(
    ([runId, timeoutMs]) =>
      new Promise<FeedTiming>((resolve, reject) => {
        const app = document.getElementById('app')!;
        const id = String(runId);
        let t0 = 0;
        let first: number | null = null;
        let all: number | null = null;
        let complete: number | null = null;
        const afterFrame = (cb: (t: number) => void): void => {
          requestAnimationFrame(() => {
            const ch = new MessageChannel();
            ch.port1.onmessage = () => cb(performance.now());
            ch.port2.postMessage(0);
          });
        };
        const finish = (): void => {
          if (first === null || all === null || complete === null) return;
          obs.disconnect();
          clearTimeout(timer);
          const mark = performance.getEntriesByName(`attention-lens:painted:${runId}`, 'mark')[0];
          resolve({ runId, firstLayerMs: first - t0, allLayersMs: all - t0, allLayersMarkMs: mark ? mark.startTime - t0 : null, allDataMs: complete - t0, postMs });
        };
        let firstSeen = false;
        let allSeen = false;
        const check = (): void => {
          if (app.dataset.runId !== id) return;
          if (!firstSeen && Number(app.dataset.paintedLayers) >= 1) {
            firstSeen = true;
            afterFrame((t) => {
              first = t;
              finish();
            });
          }
          if (!allSeen && app.dataset.paintedRun === id) {
            allSeen = true;
            afterFrame((t) => {
              all = t;
              finish();
            });
          }
          if (complete === null && app.dataset.completeRun === id) {
            complete = performance.now();
            finish();
          }
        };
        const obs = new MutationObserver(check);
        obs.observe(app, { attributes: true, attributeFilter: ['data-painted-layers', 'data-painted-run', 'data-complete-run', 'data-run-id'] });
        const timer = setTimeout(() => {
          obs.disconnect();
          reject(new Error(`run ${runId} not painted after ${timeoutMs} ms (painted layers ${app.dataset.paintedLayers}, run ${app.dataset.runId})`));
        }, timeoutMs);
        let postMs = 0;
        void (window as unknown as StagedWindow)
          .__postRun(runId, (m) => window.postMessage(m, '*'), () => (t0 = performance.now()))
          .then(() => (postMs = performance.now() - t0));
      }),
    [runId, timeoutMs] as const,
  );
}

/**
 * Posts one run's message sequence from the workbench page into the panel frame (openFramedPanel:
 * structured clones into another process, as VS Code desktop delivers them), paced by __postRun.
 * Returns when the first attention message was posted, on the clock all frames share
 * (performance.timeOrigin + now).
 */
export async function postFramedRun(page: Page, runId: number): Promise<number> {
  return page.evaluate(async (runId) => {
    const w = window as unknown as StagedWindow & { __post(m: unknown): void };
    let t0 = 0;
    await w.__postRun(runId, (m) => w.__post(m), () => (t0 = performance.timeOrigin + performance.now()));
    return t0;
  }, runId);
}

/**
 * Posting a run into the panel frame -> the frame after the panel painted all its layers, and ->
 * the last full layer stored (ms).
 */
export async function timeFramedRun(p: FramedPanel, runId: number, timeoutMs = 60_000): Promise<{ paintedMs: number; allDataMs: number }> {
  type Times = { painted: number; complete: number };
  await p.frame.evaluate(
    ([id, timeoutMs]) => {
      const app = document.getElementById('app')!;
      (window as unknown as { __times: Promise<Times> }).__times = new Promise((resolve, reject) => {
        const now = () => performance.timeOrigin + performance.now();
        let painted: number | null = null;
        let complete: number | null = null;
        const timer = setTimeout(() => {
          obs.disconnect();
          reject(new Error(`run ${id} not painted after ${timeoutMs} ms`));
        }, timeoutMs);
        const finish = () => {
          if (painted === null || complete === null) return;
          obs.disconnect();
          clearTimeout(timer);
          resolve({ painted, complete });
        };
        let paintedSeen = false;
        const obs = new MutationObserver(() => {
          if (complete === null && app.dataset.completeRun === String(id)) {
            complete = now();
            finish();
          }
          if (paintedSeen || app.dataset.paintedRun !== String(id)) return;
          paintedSeen = true;
          requestAnimationFrame(() => {
            const ch = new MessageChannel();
            ch.port1.onmessage = () => {
              painted = now();
              finish();
            };
            ch.port2.postMessage(0);
          });
        });
        obs.observe(app, { attributes: true, attributeFilter: ['data-painted-run', 'data-complete-run'] });
      });
    },
    [runId, timeoutMs] as const,
  );
  const t0 = await postFramedRun(p.page, runId);
  const t = await p.frame.evaluate(() => (window as unknown as { __times: Promise<Times> }).__times);
  return { paintedMs: t.painted - t0, allDataMs: t.complete - t0 };
}

export interface HoverSample {
  /** Pointer event dispatched (first listener, capture on window) -> the frame with the view repainted for it, committed. */
  ms: number;
  /** Same, from the event's timeStamp (when the browser took the input). */
  fromTimestampMs: number;
  /** Animation frames from the event to the repaint (1 = the first frame after the event). */
  frames: number;
  /** The app's own measure of its hover repaint work (#app[data-hover-ms]). */
  appHoverMs: number;
}

/**
 * Arms the probe for the next pointer event: when a pointerover/pointermove arrives, it notes the
 * time, then checks at each animation frame (registered after the app's own rAF callbacks) whether
 * `canvasSel` was cleared (= repainted) since; the sample is taken after that frame's rendering.
 */
async function armHover(page: Page, canvasSel: string, activeSel: string | null): Promise<void> {
  await page.evaluate(
    ([canvasSel, activeSel]) => {
      const w = window as unknown as {
        __clears: Map<HTMLCanvasElement, number>;
        __hover: Promise<HoverSample | { timeout: true; frames: number }> | null;
        __hoverCleanup?: () => void;
      };
      w.__hoverCleanup?.();
      const canvas = document.querySelector<HTMLCanvasElement>(canvasSel)!;
      const app = document.getElementById('app')!;
      let t0 = 0;
      let ts = 0;
      let resolveHover!: (v: HoverSample | { timeout: true; frames: number }) => void;
      w.__hover = new Promise((r) => (resolveHover = r));
      const onCapture = (e: Event): void => {
        if (t0) return;
        t0 = performance.now();
        ts = e.timeStamp;
      };
      let started = false;
      const onBubble = (): void => {
        if (!t0 || started) return;
        started = true;
        let n = 0;
        const check = (): void => {
          n++;
          const cleared = (w.__clears.get(canvas) ?? 0) > t0;
          const shown = activeSel === null || document.querySelector(activeSel) !== null;
          if (cleared && shown) {
            const ch = new MessageChannel();
            ch.port1.onmessage = () => {
              const t1 = performance.now();
              resolveHover({ ms: t1 - t0, fromTimestampMs: t1 - ts, frames: n, appHoverMs: Number(app.dataset.hoverMs ?? NaN) });
            };
            ch.port2.postMessage(0);
          } else if (n >= 12) resolveHover({ timeout: true, frames: n });
          else requestAnimationFrame(check);
        };
        requestAnimationFrame(check);
      };
      for (const type of ['pointerover', 'pointermove']) {
        window.addEventListener(type, onCapture, true);
        window.addEventListener(type, onBubble, false);
      }
      w.__hoverCleanup = () => {
        for (const type of ['pointerover', 'pointermove']) {
          window.removeEventListener(type, onCapture, true);
          window.removeEventListener(type, onBubble, false);
        }
      };
    },
    [canvasSel, activeSel] as const,
  );
}

/**
 * Keeps animation frames running (an empty rAF loop) while hovers are measured. Chromium dispatches
 * continuous input (pointermove, and the pointerover it causes) at the start of a frame, before
 * the rAF callbacks, when frames are being produced; an idle headless page instead gets the event
 * between frames and the first rAF comes up to one vsync later, a wait no change to the app can
 * remove. With the clock on, a trivial page measures about 0.2 ms here.
 */
async function frameClock(page: Page, on: boolean): Promise<void> {
  await page.evaluate((on) => {
    const w = window as unknown as { __clock?: boolean };
    if (on && !w.__clock) {
      w.__clock = true;
      const loop = (): void => {
        if (w.__clock) requestAnimationFrame(loop);
      };
      requestAnimationFrame(loop);
    } else if (!on) w.__clock = false;
  }, on);
}

async function takeHover(page: Page): Promise<HoverSample | null> {
  const r = await page.evaluate(() => (window as unknown as { __hover: Promise<unknown> }).__hover);
  return r && typeof r === 'object' && 'ms' in r ? (r as HoverSample) : null;
}

/** Hovers `count` token rows in the head view with real (CDP) mouse moves. */
export async function hoverHeadView(page: Page, count: number, seed = 1): Promise<{ samples: HoverSample[]; timeouts: number }> {
  await page.click('#tab-head');
  await page.mouse.move(2, 2);
  await frames(page, 3);
  const targets = await page.evaluate(() => {
    const scroller = document.querySelector('.hv-scroll')!.getBoundingClientRect();
    return [...document.querySelectorAll<HTMLElement>('.tok')]
      .filter((e) => !e.hidden)
      .map((e) => ({ r: e.getBoundingClientRect(), index: Number(e.dataset.index), side: e.dataset.side ?? 'q' }))
      .filter(({ r }) => r.top >= scroller.top && r.bottom <= scroller.bottom && r.width > 4)
      .map(({ r, index, side }) => ({ x: r.left + r.width / 2, y: r.top + r.height / 2, index, side }));
  });
  if (targets.length < 2) throw new Error('head view: no hoverable tokens found');
  const rnd = lcg(seed);
  let prev = -1;
  return timeHovers(page, count, () => {
    let k = Math.floor(rnd() * targets.length);
    if (k === prev) k = (k + 1) % targets.length;
    prev = k;
    const t = targets[k];
    return { x: t.x, y: t.y, canvas: '.hv-lines', active: `.tok.${t.side}.active[data-index="${t.index}"]` };
  });
}

/** Hovers `count` cells of the matrix view with real (CDP) mouse moves. */
export async function hoverMatrixView(page: Page, count: number, seed = 2): Promise<{ samples: HoverSample[]; timeouts: number }> {
  await page.click('#tab-matrix');
  await page.mouse.move(2, 2);
  await frames(page, 3);
  const box = await page.evaluate(() => {
    const r = document.querySelector('.mx-heat')!.getBoundingClientRect();
    return { x: r.left, y: r.top, w: r.width, h: r.height };
  });
  const rnd = lcg(seed);
  return timeHovers(page, count, () => ({ x: box.x + 1 + rnd() * (box.w - 2), y: box.y + 1 + rnd() * (box.h - 2), canvas: '.mx-overlay', active: null }));
}

/**
 * `count` real mouse moves to the points `next` gives, each timed from the pointer event to the
 * frame that repaints `canvas` (and shows `active`, when given; see armHover).
 */
async function timeHovers(
  page: Page,
  count: number,
  next: () => { x: number; y: number; canvas: string; active: string | null },
): Promise<{ samples: HoverSample[]; timeouts: number }> {
  const samples: HoverSample[] = [];
  let timeouts = 0;
  await frameClock(page, true);
  for (let i = 0; i < count; i++) {
    const t = next();
    await armHover(page, t.canvas, t.active);
    await page.mouse.move(t.x, t.y);
    const s = await takeHover(page);
    if (s) samples.push(s);
    else timeouts++;
  }
  await frameClock(page, false);
  return { samples, timeouts };
}

/** The page's JS heap after a forced GC (DevTools protocol). */
export async function pageHeap(cdp: CDPSession): Promise<{ usedSize: number; totalSize: number; backingStorageSize: number | null; nodes: number | null; listeners: number | null }> {
  await cdp.send('HeapProfiler.collectGarbage');
  await cdp.send('HeapProfiler.collectGarbage');
  const h = (await cdp.send('Runtime.getHeapUsage')) as { usedSize: number; totalSize: number; backingStorageSize?: number };
  let nodes: number | null = null;
  let listeners: number | null = null;
  try {
    const c = (await cdp.send('Memory.getDOMCounters' as never)) as { nodes: number; jsEventListeners: number };
    nodes = c.nodes;
    listeners = c.jsEventListeners;
  } catch {
    // not available in this Chromium
  }
  return { usedSize: h.usedSize, totalSize: h.totalSize, backingStorageSize: h.backingStorageSize ?? null, nodes, listeners };
}

/**
 * Self sizes from a heap snapshot (after a forced GC), split into what the page's own code can
 * grow and what it cannot: V8's compiled code and type feedback (tiering up over many runs), and
 * the performance timeline Chromium keeps by itself (long-animation-frame entries, up to 200).
 */
export interface HeapBreakdown {
  total: number;
  code: number;
  timeline: number;
  other: number;
}

export async function heapBreakdown(cdp: CDPSession): Promise<HeapBreakdown> {
  await cdp.send('HeapProfiler.collectGarbage');
  const chunks: string[] = [];
  const onChunk = (p: { chunk: string }) => chunks.push(p.chunk);
  cdp.on('HeapProfiler.addHeapSnapshotChunk', onChunk);
  try {
    await cdp.send('HeapProfiler.takeHeapSnapshot', { reportProgress: false });
  } finally {
    cdp.off('HeapProfiler.addHeapSnapshotChunk', onChunk);
  }
  const snap = JSON.parse(chunks.join('')) as { snapshot: { meta: { node_fields: string[]; node_types: [string[]] } }; nodes: number[]; strings: string[] };
  const fields = snap.snapshot.meta.node_fields;
  const types = snap.snapshot.meta.node_types[0];
  const [typeAt, nameAt, sizeAt, stride] = [fields.indexOf('type'), fields.indexOf('name'), fields.indexOf('self_size'), fields.length];
  const out: HeapBreakdown = { total: 0, code: 0, timeline: 0, other: 0 };
  for (let i = 0; i < snap.nodes.length; i += stride) {
    const size = snap.nodes[i + sizeAt];
    const type = types[snap.nodes[i + typeAt]];
    const name = type === 'native' ? snap.strings[snap.nodes[i + nameAt]] : '';
    out.total += size;
    if (type === 'code') out.code += size;
    else if (name.startsWith('Performance') || name.includes('ScriptTimingInfo') || name.includes('<blink::Performance')) out.timeline += size;
    else out.other += size;
  }
  return out;
}

function lcg(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/**
 * One more run, traced (Chromium performance trace) and, separately, CPU-profiled: where the
 * renderer's main thread spends the time between the first attention message and the last painted frame.
 */
export async function profileRun(browser: Browser, page: Page, runId: number): Promise<Record<string, unknown>> {
  const fs = await import('node:fs');
  const os = await import('node:os');
  const path = await import('node:path');
  const file = path.join(os.tmpdir(), `attention-lens-bench-trace-${process.pid}.json`);
  // No lead here: the trace window below starts at the first task after tracing starts.
  const lead = await page.evaluate(() => (window as unknown as StagedWindow).__leadMs);
  await page.evaluate(() => ((window as unknown as StagedWindow).__leadMs = 0));
  await browser.startTracing(page, { path: file, categories: ['devtools.timeline', 'disabled-by-default-devtools.timeline', 'v8', 'blink', 'cc'] });
  const traced = await feedRun(page, runId);
  await frames(page, 2);
  await browser.stopTracing();
  const trace = JSON.parse(fs.readFileSync(file, 'utf8')) as { traceEvents: Array<{ ph: string; name: string; pid: number; tid: number; ts: number; dur?: number; args?: { name?: string } }> };
  fs.rmSync(file, { force: true });
  const ev = trace.traceEvents;
  const main = ev.find((e) => e.ph === 'M' && e.name === 'thread_name' && e.args?.name === 'CrRendererMain');
  const sums: Record<string, number> = {};
  let frameCount = 0;
  if (main) {
    const onMain = ev.filter((e) => e.ph === 'X' && e.pid === main.pid && e.tid === main.tid && e.dur);
    const tasks = onMain.filter((e) => e.name === 'RunTask');
    const start = Math.min(...tasks.map((e) => e.ts));
    const end = start + traced.allLayersMs * 1000;
    const inRun = onMain.filter((e) => e.ts >= start && e.ts <= end);
    const sum = (name: string) => Math.round(inRun.filter((e) => e.name === name).reduce((s, e) => s + (e.dur ?? 0), 0) / 1000);
    sums.main_thread_busy_ms = sum('RunTask');
    sums.message_events_ms = sum('HandlePostMessage');
    sums.deserialize_ms = sum('SerializedScriptValueFactory::deserialize');
    sums.paint_tasks_ms = sum('MessagePort::Accept'); // the panel's own tasks: reading queued messages, the model view's paint pump
    sums.frames_ms = sum('ProxyMain::BeginMainFrame'); // style, layout, paint, rAF callbacks, commit
    sums.commit_ms = sum('Commit');
    sums.gc_ms = Math.round(inRun.filter((e) => /^(V8\.GC|MajorGC|MinorGC|V8\.GC_)/.test(e.name) || e.name === 'BlinkGC.AtomicPhase').reduce((s, e) => s + (e.dur ?? 0), 0) / 1000);
    frameCount = inRun.filter((e) => e.name === 'ProxyMain::BeginMainFrame').length;
  }
  // JS hot spots (self time) in another run.
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Profiler.enable');
  await cdp.send('Profiler.setSamplingInterval', { interval: 500 });
  await cdp.send('Profiler.start');
  const profiled = await feedRun(page, runId + 1);
  await frames(page, 2);
  const { profile } = (await cdp.send('Profiler.stop')) as unknown as {
    profile: { nodes: Array<{ id: number; callFrame: { functionName: string; url: string } }>; samples: number[]; timeDeltas: number[] };
  };
  await cdp.detach();
  await page.evaluate((lead) => ((window as unknown as StagedWindow).__leadMs = lead), lead);
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  profile.samples.forEach((id, i) => {
    const n = byId.get(id)!;
    const name = n.callFrame.functionName || (n.callFrame.url ? '(anonymous)' : '(native/idle)');
    if (name === '(program)' || name === '(idle)' || name === '(native/idle)') return;
    self.set(name, (self.get(name) ?? 0) + (profile.timeDeltas[i] ?? 0) / 1000);
  });
  const hot = [...self].sort((a, b) => b[1] - a[1]).slice(0, 6).map(([fn, ms]) => ({ fn, self_ms: Math.round(ms) }));
  return { traced_all_layers_ms: Math.round(traced.allLayersMs), frames: frameCount, ...sums, profiled_all_layers_ms: Math.round(profiled.allLayersMs), js_self_time: hot };
}
