// Memory growth over consecutive runs, after forced GC: heap after the last of N runs / heap after
// the first (N = 50 unless BENCH_MEMORY_RUNS says otherwise), at T = 512 by default (BENCH_MEMORY_T).
// - host: a Node process driving EngineClient + out/worker.js as the extension does
//   (bench/host-driver.ts, --expose-gc): process.memoryUsage().heapUsed, and external memory
//   (the layers' ArrayBuffers) beside it;
// - webview: the built panel in Chromium, in a cross-origin frame of a workbench page as VS Code
//   hosts it (so its heap is its own process's), fed N runs of real attention (views cycled model
//   -> head -> matrix with a hover each run, measured in the model view): DevTools protocol
//   HeapProfiler.collectGarbage + Runtime.getHeapUsage, with ArrayBuffer backing stores and DOM
//   counters beside it.
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
      const series: Array<{ run: number; usedMiB: number; nodes: number | null }> = [];
      const beforeAny = await pageHeap(cdp);
      let after1: Awaited<ReturnType<typeof pageHeap>> | null = null;
      let snap1: HeapBreakdown | null = null;
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
      for (let i = 1; i <= RUNS; i++) {
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
          series.push({ run: 1, usedMiB: round(after1.usedSize / 2 ** 20, 3), nodes: after1.nodes });
        } else if (i % 10 === 0 && i < RUNS) {
          const h = await measure();
          series.push({ run: i, usedMiB: round(h.usedSize / 2 ** 20, 3), nodes: h.nodes });
        }
      }
      const afterN = await measure();
      const snapN = await heapBreakdown(cdp);
      series.push({ run: RUNS, usedMiB: round(afterN.usedSize / 2 ** 20, 3), nodes: afterN.nodes });
      const shown = await dom.attribute('#app', 'data-view');
      return { beforeAny, after1: after1!, afterN, snap1: snap1!, snapN, series, shown, seconds: round((performance.now() - t0) / 1000, 1), errors: p.errors.slice(0, 5) };
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
  const webGrowth = ratio(webview.after1.usedSize, webview.afterN.usedSize);
  const webBacking = webview.after1.backingStorageSize && webview.afterN.backingStorageSize ? ratio(webview.after1.backingStorageSize, webview.afterN.backingStorageSize) : null;
  const mib = (n: number) => round(n / 2 ** 20, 1);
  const s10 = webview.series.find((s) => s.run === 10);
  const steady = s10 && RUNS > 10 ? ratio(s10.usedMiB, webview.afterN.usedSize / 2 ** 20) : null;
  // Where the growth is (heap snapshots after run 1 and run N): the panel's own objects vs V8's
  // compiled code and Chromium's performance timeline, which grow to bounded sizes on their own.
  const grew = (k: keyof HeapBreakdown) => webview.snapN[k] - webview.snap1[k];
  const breakdown = { code_bytes: grew('code'), timeline_bytes: grew('timeline'), other_bytes: grew('other'), total_bytes: grew('total') };
  const webGrowthOwn = round((webview.after1.usedSize + breakdown.other_bytes) / webview.after1.usedSize, 3);
  const steadyPerRun = s10 && RUNS > 10 ? Math.round(((webview.afterN.usedSize / 2 ** 20 - s10.usedMiB) * 2 ** 20) / (RUNS - 10)) : null;
  const out = {
    tokens: T,
    runs: RUNS,
    host_growth: hostGrowth,
    webview_growth: webGrowth,
    // From run 10 to the last: after the one-time costs (JIT code, the views' DOM) are paid.
    webview_growth_steady: steady,
    // Growth of everything but V8 code/feedback and the performance timeline (see breakdown).
    webview_growth_own_objects: webGrowthOwn,
    webview_growth_breakdown: breakdown,
    webview_bytes_per_run_steady: steadyPerRun,
    host_external_growth: hostExternal,
    webview_array_buffers_growth: webBacking,
    host: { after1: host.after1, afterN: host.afterN, run_ms_last: host.runMs.slice(-3).map((x: number) => round(x, 0)) },
    webview: webview,
  };
  table(`memory (heap after ${RUNS} runs / after 1, forced GC, T=${T})`, [
    {
      side: 'host (EngineClient process)',
      'after 1 MiB': mib(host.after1.heapUsed),
      [`after ${RUNS} MiB`]: mib(host.afterN.heapUsed),
      growth: hostGrowth,
      target: TARGETS.heapGrowth.label,
      '': verdict(hostGrowth, TARGETS.heapGrowth),
      'external (ArrayBuffers) MiB: after 1 -> N': `${mib(host.after1.external)} -> ${mib(host.afterN.external)}`,
      'DOM nodes / listeners: after 1 -> N': '',
    },
    {
      side: 'webview (Chromium page)',
      'after 1 MiB': mib(webview.after1.usedSize),
      [`after ${RUNS} MiB`]: mib(webview.afterN.usedSize),
      growth: `${webGrowth}${steady === null ? '' : ` (run 10 -> ${RUNS}: ${steady}, ${steadyPerRun} B/run)`}`,
      target: TARGETS.heapGrowth.label,
      '': verdict(webGrowth, TARGETS.heapGrowth),
      'external (ArrayBuffers) MiB: after 1 -> N':
        webview.after1.backingStorageSize === null ? 'n/a' : `${mib(webview.after1.backingStorageSize)} -> ${mib(webview.afterN.backingStorageSize ?? 0)}`,
      'DOM nodes / listeners: after 1 -> N': `${webview.after1.nodes} / ${webview.after1.listeners} -> ${webview.afterN.nodes} / ${webview.afterN.listeners}`,
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
