// temporary experiment (not committed): CPU profile of the framed panel during runs
import { realRuns } from './real-run';
import { launch, stageRun, frames } from './render-page';
import { ensureBuilt, openFramedPanel } from '../test/webview/harness';

async function main() {
  const T = Number(process.env.T ?? 512);
  const run = (await realRuns([T])).get(T)!;
  ensureBuilt();
  const browser = await launch();
  const p = await openFramedPanel(browser);
  await stageRun(p.page, run);
  const feed = async (i: number) => {
    await p.page.evaluate((runId) => {
      const w = window as any;
      w.__post({ ...w.__runStart, runId });
      w.__stage.forEach((data: ArrayBuffer, i: number) => w.__post({ ...w.__stageLayer[i], runId, data }));
      w.__post({ ...w.__runDone, runId });
      w.__post({ type: 'status', message: null });
    }, i);
    await p.frame.waitForFunction((id) => document.getElementById('app')!.dataset.paintedRun === String(id), i, { timeout: 60000 });
    await frames(p.page, 3);
  };
  await feed(1);
  await feed(2);
  const cdp = p.cdp;
  await cdp.send('Profiler.enable');
  await cdp.send('Profiler.setSamplingInterval', { interval: 200 });
  await cdp.send('Profiler.start');
  await feed(3);
  await feed(4);
  const { profile } = (await cdp.send('Profiler.stop')) as any;
  const byId = new Map<number, any>(profile.nodes.map((n: any) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map<string, number>();
  const total = new Map<string, number>();
  profile.samples.forEach((id: number, i: number) => {
    const dt = (profile.timeDeltas[i] ?? 0) / 1000;
    const n = byId.get(id)!;
    const name = `${n.callFrame.functionName || '(anon)'}:${n.callFrame.lineNumber}`;
    self.set(name, (self.get(name) ?? 0) + dt);
    const seen = new Set<string>();
    for (let k: number | undefined = id; k !== undefined; k = parent.get(k)) {
      const m = byId.get(k)!; const nm = `${m.callFrame.functionName || '(anon)'}:${m.callFrame.lineNumber}`;
      if (seen.has(nm)) continue; seen.add(nm);
      total.set(nm, (total.get(nm) ?? 0) + dt);
    }
  });
  console.log('SELF', [...self].sort((a, b) => b[1] - a[1]).slice(0, 15).map(([f, t]) => `${f} ${t.toFixed(0)}`).join('\n'));
  console.log('TOTAL', [...total].sort((a, b) => b[1] - a[1]).slice(0, 25).map(([f, t]) => `${f} ${t.toFixed(0)}`).join('\n'));
  await p.close();
  await browser.close();
}
main().catch((e) => { console.error(e); process.exit(1); });
