// Memory over consecutive runs, after forced GC, at T = 512 by default (BENCH_MEMORY_T).
// - host: a Node process driving EngineClient + out/worker.js as the extension does
//   (bench/host-driver.ts, --expose-gc), N runs (N = 50 unless BENCH_MEMORY_RUNS says otherwise):
//   process.memoryUsage().heapUsed after run N / after run 1, and external memory (the layers'
//   ArrayBuffers) beside it;
// - webview: the built panel in Chromium, in a cross-origin frame of a workbench page as VS Code
//   hosts it (so its heap is its own process's), fed 3N runs of real attention (views cycled model
//   -> head -> matrix with a hover each run, measured in the model view), through the DevTools
//   protocol (HeapProfiler.collectGarbage, Runtime.getHeapUsage, Memory.getDOMCounters). A leak
//   shows in what a run keeps (issue 15):
//     webview_growth            (JS heap + ArrayBuffer backing stores) after run N / after run 1, <= 1.10;
//     webview_heap_late_growth  JS heap after run 3N / after run 2N (150 / 100), <= 1.02: V8's code
//                               and the browser's timeline buffers grow early and level off, a leak does not;
//     webview_dom_nodes_change  the most the DOM node count differs from run 1's at any measure point, 0.
//   Heap-only figures of the earlier definition stay beside them (webview_heap_growth, _steady,
//   _own_objects with the heap-snapshot breakdown).
// The two run in parallel (they are independent processes; timings here are not the point).
import type { CDPSession, Page } from 'playwright-core';
import { round, table } from './util';
import { ensureBuiltAll, realRuns } from './real-run';
import { frames, heapBreakdown, launch, pageHeap, postFramedRun, stageRun, type HeapBreakdown } from './render-page';
import { ensureBuilt, openFramedPanel } from '../test/webview/harness';
import { runDriver } from './host';
import { TARGETS, verdict } from './targets';

const T = Number(process.env.BENCH_MEMORY_T ?? 512);
const RUNS = Number(process.env.BENCH_MEMORY_RUNS ?? 50);
/** The webview's late window: from run 2N to run 3N (100 -> 150). */
const LATE_FROM = 2 * RUNS;
const LAST = 3 * RUNS;
const VIEWS = ['model', 'head', 'matrix'] as const;

/**
 * The panel seen from outside its process, with DevTools protocol DOM calls (C++ only: they run no
 * script in the panel's heap): attributes of #app, and centres of elements to point at.
 */
function panelDom(cdp: CDPSession) {
  let root: number | null = null;
  const node = async (selector: string): Promise<number> => {
    root ??= ((await cdp.send('DOM.getDocument', { depth: 0 })) as { root: { nodeId: number } }).root.nodeId;
    const { nodeId } = (await cdp.send('DOM.querySelector', { nodeId: root, selector })) as { nodeId: number };
    if (!nodeId) throw new Error(`panel: no ${selector}`);
    return nodeId;
  };
  return {
    async attribute(selector: string, name: string): Promise<string | null> {
      const { attributes } = (await cdp.send('DOM.getAttributes', { nodeId: await node(selector) })) as { attributes: string[] };
      const i = attributes.findIndex((a, k) => k % 2 === 0 && a === name);
      return i < 0 ? null : attributes[i + 1];
    },
    /** Content box in the frame's coordinates (the frame fills the page from its top-left corner). */
    async box(selector: string): Promise<{ x: number; y: number; width: number; height: number }> {
      const { model } = (await cdp.send('DOM.getBoxModel', { nodeId: await node(selector) })) as { model: { content: number[]; width: number; height: number } };
      return { x: model.content[0], y: model.content[1], width: model.width, height: model.height };
    },
  };
}

/** Posts one run into the panel frame (postFramedRun) and waits until it has painted every layer and stored all its data. */
async function feedFramed(page: Page, dom: ReturnType<typeof panelDom>, runId: number): Promise<void> {
  await postFramedRun(page, runId);
  const deadline = Date.now() + 60_000;
  const id = String(runId);
  while ((await dom.attribute('#app', 'data-painted-run')) !== id || (await dom.attribute('#app', 'data-complete-run')) !== id) {
    if (Date.now() > deadline) throw new Error(`run ${runId} not painted after 60 s`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function webviewGrowth() {
  const run = (await realRuns([T])).get(T)!;
  const browser = await launch();
  try {
    ensureBuilt();
    // The panel in a cross-origin frame, as VS Code hosts it: the driver's staging, message
    // cloning and Playwright's own scripts run in the workbench page's process, and the heap
    // measured is the panel frame's process alone. No script of the driver runs in it: the panel
    // is read and pointed at through DevTools DOM calls and real mouse input.
    const p = await openFramedPanel(browser, { viewport: { width: 1100, height: 760 } });
    const { page, cdp } = p;
    const dom = panelDom(cdp);
    try {
      await stageRun(page, run);
      const centre = async (selector: string) => {
        const b = await dom.box(selector);
        return { x: b.x + b.width / 2, y: b.y + b.height / 2 };
      };
      // Where to point, looked up once (the tabs appear with the first run).
      let tabs: Record<string, { x: number; y: number }> | null = null;
      let tokens: { x: number; y: number }[] | null = null;
      let heat: { x: number; y: number; width: number; height: number } | null = null;
      const showView = async (view: string) => {
        const t = tabs?.[view];
        if (t) await page.mouse.click(t.x, t.y);
        await frames(page, 2);
      };
      const measure = async () => {
        await showView('model');
        await page.mouse.move(2, 2);
        await frames(page, 3);
        // What the panel posted (hover/token, select/head), relayed to the workbench page.
        await page.evaluate(() => {
          (window as unknown as { __posted: unknown[] }).__posted.length = 0;
        });
        return pageHeap(cdp);
      };
      type Heap = Awaited<ReturnType<typeof pageHeap>>;
      const series: Array<{ run: number; usedMiB: number; arrayBuffersMiB: number | null; nodes: number | null; listeners: number | null }> = [];
      const note = (run: number, h: Heap) =>
        series.push({ run, usedMiB: round(h.usedSize / 2 ** 20, 3), arrayBuffersMiB: h.backingStorageSize === null ? null : round(h.backingStorageSize / 2 ** 20, 3), nodes: h.nodes, listeners: h.listeners });
      const beforeAny = await pageHeap(cdp);
      let after1: Heap | null = null;
      let afterN: Heap | null = null;
      let afterLateFrom: Heap | null = null;
      let afterLast: Heap | null = null;
      let snap1: HeapBreakdown | null = null;
      let snapN: HeapBreakdown | null = null;
      const t0 = performance.now();
      const exercise = async (view: (typeof VIEWS)[number], i: number) => {
        await showView(view);
        if (view === 'head') {
          tokens ??= await Promise.all([3, 4, 5, 6, 7].map((k) => centre(`.tok.q[data-index="${k}"]`)));
          const t = tokens[i % 5];
          await page.mouse.move(t.x, t.y);
        } else if (view === 'matrix') {
          heat ??= await dom.box('.mx-heat');
          await page.mouse.move(heat.x + (heat.width * ((i * 37) % 100)) / 100, heat.y + (heat.height * ((i * 61) % 100)) / 100);
        }
        await frames(page, 2);
      };
      for (let i = 1; i <= LAST; i++) {
        const view = VIEWS[(i - 1) % VIEWS.length];
        await showView(view);
        await feedFramed(page, dom, i);
        tabs ??= Object.fromEntries(await Promise.all(VIEWS.map(async (v) => [v, await centre(`#tab-${v}`)] as const)));
        await exercise(view, i);
        if (i === 1) {
          // The baseline has shown every view once (their one-time DOM and buffers are not growth).
          await exercise('head', i);
          await exercise('matrix', i);
          after1 = await measure();
          snap1 = await heapBreakdown(cdp);
          note(1, after1);
        } else if (i % 10 === 0 || i === RUNS || i === LATE_FROM || i === LAST) {
          const h = await measure();
          note(i, h);
          console.log(`webview run ${i}/${LAST}: heap ${round(h.usedSize / 2 ** 20, 3)} MiB, ArrayBuffers ${h.backingStorageSize === null ? 'n/a' : round(h.backingStorageSize / 2 ** 20, 1)} MiB, ${h.nodes} DOM nodes (${round((performance.now() - t0) / 1000, 0)} s)`);
          if (i === RUNS) {
            afterN = h;
            snapN = await heapBreakdown(cdp);
          }
          if (i === LATE_FROM) afterLateFrom = h;
          if (i === LAST) afterLast = h;
        }
      }
      const shown = await dom.attribute('#app', 'data-view');
      return {
        beforeAny,
        after1: after1!,
        afterN: afterN!,
        afterLateFrom: afterLateFrom!,
        afterLast: afterLast!,
        snap1: snap1!,
        snapN: snapN!,
        series,
        shown,
        seconds: round((performance.now() - t0) / 1000, 1),
        errors: p.errors.slice(0, 5),
      };
    } finally {
      await p.close();
    }
  } finally {
    await browser.close();
  }
}

export async function memorySection() {
  ensureBuiltAll();
  // Real attention first (the engine, in this process), so the host driver does not compete with it.
  await realRuns([T]);
  const [host, webview] = await Promise.all([runDriver('memory', T, RUNS), webviewGrowth()]);
  const ratio = (a: number, b: number) => round(b / a, 3);
  const hostGrowth = ratio(host.after1.heapUsed, host.afterN.heapUsed);
  const hostExternal = ratio(host.after1.external, host.afterN.external);
  const w = webview;
  // What a run keeps: the JS heap plus the ArrayBuffers' backing stores (where the attention lives).
  const kept = (h: typeof w.after1) => (h.backingStorageSize === null ? null : h.usedSize + h.backingStorageSize);
  const kept1 = kept(w.after1);
  const keptN = kept(w.afterN);
  const webGrowth = kept1 !== null && keptN !== null ? ratio(kept1, keptN) : null;
  const webHeapGrowth = ratio(w.after1.usedSize, w.afterN.usedSize);
  const webLate = ratio(w.afterLateFrom.usedSize, w.afterLast.usedSize);
  const keptLateFrom = kept(w.afterLateFrom);
  const keptLast = kept(w.afterLast);
  const webLateKept = keptLateFrom !== null && keptLast !== null ? ratio(keptLateFrom, keptLast) : null;
  const webBacking = w.after1.backingStorageSize && w.afterN.backingStorageSize ? ratio(w.after1.backingStorageSize, w.afterN.backingStorageSize) : null;
  // DOM nodes at every measure point (every 10 runs), against run 1's.
  const nodes = w.series.map((s) => s.nodes).filter((n): n is number => typeof n === 'number');
  const nodesChange = w.after1.nodes === null || nodes.length < 2 ? null : Math.max(...nodes.map((n) => Math.abs(n - w.after1.nodes!)));
  const mib = (n: number) => round(n / 2 ** 20, 1);
  const mib3 = (n: number) => round(n / 2 ** 20, 3);
  const s10 = w.series.find((s) => s.run === 10);
  const steady = s10 && RUNS > 10 ? ratio(s10.usedMiB, w.afterN.usedSize / 2 ** 20) : null;
  // Where the heap's growth is (heap snapshots after run 1 and run N): the panel's own objects vs
  // V8's compiled code and Chromium's performance timeline, which grow to bounded sizes on their own.
  const grew = (k: keyof HeapBreakdown) => w.snapN[k] - w.snap1[k];
  const breakdown = { code_bytes: grew('code'), timeline_bytes: grew('timeline'), other_bytes: grew('other'), total_bytes: grew('total') };
  const webGrowthOwn = round((w.after1.usedSize + breakdown.other_bytes) / w.after1.usedSize, 3);
  const steadyPerRun = s10 && RUNS > 10 ? Math.round(((w.afterN.usedSize / 2 ** 20 - s10.usedMiB) * 2 ** 20) / (RUNS - 10)) : null;
  const out = {
    tokens: T,
    runs: RUNS,
    webview_runs: LAST,
    host_growth: hostGrowth,
    // (JS heap + ArrayBuffers) after run N / after run 1.
    webview_growth: webGrowth,
    // JS heap after run 3N / after run 2N (150 / 100).
    webview_heap_late_growth: webLate,
    webview_late_growth_with_array_buffers: webLateKept,
    // The most the panel's DOM node count differs from run 1's at any measure point (every 10 runs, forced GC, model view).
    webview_dom_nodes_change: nodesChange,
    webview_dom_nodes: Object.fromEntries(w.series.map((s) => [`run${s.run}`, s.nodes])),
    webview_kept_mib: { after1: kept1 === null ? null : mib3(kept1), afterN: keptN === null ? null : mib3(keptN), afterLateFrom: keptLateFrom === null ? null : mib3(keptLateFrom), afterLast: keptLast === null ? null : mib3(keptLast) },
    // The earlier, heap-only figures: JS heap after run N / after run 1 ...
    webview_heap_growth: webHeapGrowth,
    // ... from run 10 to N, after the one-time costs (JIT code, the views' DOM) are paid ...
    webview_growth_steady: steady,
    // ... and without V8 code/feedback and the performance timeline (see breakdown).
    webview_growth_own_objects: webGrowthOwn,
    webview_growth_breakdown: breakdown,
    webview_bytes_per_run_steady: steadyPerRun,
    host_external_growth: hostExternal,
    webview_array_buffers_growth: webBacking,
    host: { after1: host.after1, afterN: host.afterN, run_ms_last: host.runMs.slice(-3).map((x: number) => round(x, 0)) },
    webview: w,
  };
  table(`memory (after forced GC, T=${T}: host ${RUNS} runs, webview ${LAST} runs)`, [
    {
      measure: `host: JS heap after run ${RUNS} / after run 1`,
      value: `${hostGrowth} (${mib(host.after1.heapUsed)} -> ${mib(host.afterN.heapUsed)} MiB; external ${mib(host.after1.external)} -> ${mib(host.afterN.external)} MiB)`,
      target: TARGETS.heapGrowth.label,
      '': verdict(hostGrowth, TARGETS.heapGrowth),
    },
    {
      measure: `webview: JS heap + ArrayBuffers after run ${RUNS} / after run 1`,
      value: `${webGrowth} (${kept1 === null ? 'n/a' : mib(kept1)} -> ${keptN === null ? 'n/a' : mib(keptN)} MiB)`,
      target: TARGETS.webviewGrowth.label,
      '': verdict(webGrowth, TARGETS.webviewGrowth),
    },
    {
      measure: `webview: JS heap after run ${LAST} / after run ${LATE_FROM}`,
      value: `${webLate} (${mib3(w.afterLateFrom.usedSize)} -> ${mib3(w.afterLast.usedSize)} MiB; with ArrayBuffers ${webLateKept})`,
      target: TARGETS.webviewLateGrowth.label,
      '': verdict(webLate, TARGETS.webviewLateGrowth),
    },
    {
      measure: `webview: DOM nodes, most differing from run 1's (every 10 runs to ${LAST})`,
      value: `${nodesChange} (${w.after1.nodes} nodes / ${w.after1.listeners} listeners after run 1 -> ${w.afterLast.nodes} / ${w.afterLast.listeners} after run ${LAST})`,
      target: TARGETS.domNodesChange.label,
      '': verdict(nodesChange, TARGETS.domNodesChange),
    },
    {
      measure: `webview, heap only (earlier definition): after run ${RUNS} / after run 1`,
      value: `${webHeapGrowth} (${mib3(w.after1.usedSize)} -> ${mib3(w.afterN.usedSize)} MiB${steady === null ? '' : `; run 10 -> ${RUNS}: ${steady}, ${steadyPerRun} B/run`}; own objects ${webGrowthOwn})`,
      target: '',
      '': '',
    },
  ]);
  const kb = (n: number) => `${round(n / 1024, 1)} KB`;
  table(`webview heap growth from run 1 to ${RUNS}, by heap snapshot (self sizes)`, [
    {
      'V8 code + feedback': kb(breakdown.code_bytes),
      'performance timeline': kb(breakdown.timeline_bytes),
      'everything else (panel objects, DOM, styles)': kb(breakdown.other_bytes),
      total: kb(breakdown.total_bytes),
      'growth of everything else': webGrowthOwn,
    },
  ]);
  return out;
}
