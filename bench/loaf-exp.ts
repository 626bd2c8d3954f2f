// temporary experiment (not committed): long animation frames in the framed panel
import { realRuns } from './real-run';
import { launch, stageRun, frames } from './render-page';
import { ensureBuilt, openFramedPanel } from '../test/webview/harness';

async function main() {
  const T = Number(process.env.T ?? 512);
  const run = (await realRuns([T])).get(T)!;
  ensureBuilt();
  const browser = await launch();
  const p = await openFramedPanel(browser);
  await p.frame.evaluate(() => {
    (window as any).__loaf = [];
    new PerformanceObserver((l) => { for (const e of l.getEntries()) (window as any).__loaf.push(e.toJSON()); }).observe({ type: 'long-animation-frame', buffered: true });
  });
  await stageRun(p.page, run);
  const t0s: number[] = [];
  for (let i = 1; i <= 4; i++) {
    const t0 = Date.now();
    await p.page.evaluate((runId) => {
      const w = window as any;
      w.__post({ ...w.__runStart, runId });
      w.__stage.forEach((data: ArrayBuffer, i: number) => w.__post({ ...w.__stageLayer[i], runId, data }));
      w.__post({ ...w.__runDone, runId });
      w.__post({ type: 'status', message: null });
    }, i);
    await p.frame.waitForFunction((id) => document.getElementById('app')!.dataset.paintedRun === String(id), i, { timeout: 60000 });
    console.log('painted in', Date.now() - t0, 'ms (incl. polling)');
    await frames(p.page, 3);
    const loaf = await p.frame.evaluate(() => { const l = (window as any).__loaf; (window as any).__loaf = []; return l; });
    console.log(`run ${i}: ${loaf.length} LoAF`);
    for (const e of loaf) console.log(`  dur ${e.duration.toFixed(0)} block ${e.blockingDuration.toFixed(0)} render ${(e.startTime + e.duration - e.renderStart).toFixed(0)} styleLayout ${(e.startTime + e.duration - e.styleAndLayoutStart).toFixed(0)} | ` + e.scripts.map((s: any) => `${s.invokerType}:${s.invoker} ${s.duration.toFixed(0)}ms fwd${s.forcedStyleAndLayoutDuration.toFixed(0)} ${s.sourceFunctionName}`).join('; '));
  }
  await p.close();
  await browser.close();
}
main().catch((e) => { console.error(e); process.exit(1); });
