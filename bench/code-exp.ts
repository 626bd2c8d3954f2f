// temporary experiment: what grows in the framed panel's heap (code nodes by name)
import { realRuns } from './real-run';
import { launch, stageRun, frames } from './render-page';
import { ensureBuilt, openFramedPanel } from '../test/webview/harness';
import type { CDPSession } from 'playwright-core';

async function snap(cdp: CDPSession) {
  await cdp.send('HeapProfiler.collectGarbage');
  const chunks: string[] = [];
  const on = (p: { chunk: string }) => chunks.push(p.chunk);
  cdp.on('HeapProfiler.addHeapSnapshotChunk', on);
  await cdp.send('HeapProfiler.takeHeapSnapshot', { reportProgress: false });
  cdp.off('HeapProfiler.addHeapSnapshotChunk', on);
  const s = JSON.parse(chunks.join(''));
  const f = s.snapshot.meta.node_fields; const types = s.snapshot.meta.node_types[0];
  const [ti, ni, si, st] = [f.indexOf('type'), f.indexOf('name'), f.indexOf('self_size'), f.length];
  const m = new Map<string, number>();
  for (let i = 0; i < s.nodes.length; i += st) {
    const type = types[s.nodes[i + ti]];
    let name: string = s.strings[s.nodes[i + ni]];
    if (type !== 'code' && type !== 'native' && type !== 'hidden') name = '';
    name = name.replace(/\d+/g, '#').slice(0, 60);
    const k = `${type}|${name}`;
    m.set(k, (m.get(k) ?? 0) + s.nodes[i + si]);
  }
  return m;
}

async function main() {
  const T = Number(process.env.T ?? 512);
  const N = Number(process.env.N ?? 20);
  const run = (await realRuns([T])).get(T)!;
  ensureBuilt();
  const browser = await launch();
  const p = await openFramedPanel(browser);
  await stageRun(p.page, run);
  const feed = async (i: number) => {
    await p.page.evaluate((runId) => {
      const w = window as any;
      w.__post({ ...w.__runStart, runId });
      w.__stage.forEach((data: ArrayBuffer, layer: number) => w.__post({ type: 'run/layer', runId, layer, data, packed: w.__stagePacked[layer] }));
      w.__post({ ...w.__runDone, runId });
      w.__post({ type: 'status', message: null });
    }, i);
    for (;;) { const r = await p.cdp.send('DOM.getDocument', { depth: 0 }) as any; const q = await p.cdp.send('DOM.querySelector', { nodeId: r.root.nodeId, selector: '#app' }) as any; const a = (await p.cdp.send('DOM.getAttributes', { nodeId: q.nodeId }) as any).attributes as string[]; const k = a.indexOf('data-painted-run'); if (k >= 0 && a[k + 1] === String(i)) break; await new Promise((r) => setTimeout(r, 25)); }
    await frames(p.page, 3);
  };
  await feed(1);
  const a = await snap(p.cdp);
  const series: number[] = [];
  for (let i = 2; i <= N; i++) { await feed(i); if (i % 5 === 0) { await p.cdp.send('HeapProfiler.collectGarbage'); series.push(((await p.cdp.send('Runtime.getHeapUsage')) as any).usedSize); } }
  const b = await snap(p.cdp);
  const keys = new Set([...a.keys(), ...b.keys()]);
  const d = [...keys].map((k) => [k, (b.get(k) ?? 0) - (a.get(k) ?? 0)] as const).filter(([, v]) => Math.abs(v) > 2000).sort((x, y) => y[1] - x[1]);
  const byType = new Map<string, number>();
  for (const k of keys) { const t = k.split('|')[0]; byType.set(t, (byType.get(t) ?? 0) + (b.get(k) ?? 0) - (a.get(k) ?? 0)); }
  console.log('by type', JSON.stringify([...byType]));
  console.log('total a', [...a.values()].reduce((x, y) => x + y, 0), 'b', [...b.values()].reduce((x, y) => x + y, 0));
  console.log('series', series.map((x) => (x / 1024).toFixed(0)).join(' '));
  for (const [k, v] of d.slice(0, 40)) console.log(v, k);
  await p.close();
  await browser.close();
}
main().catch((e) => { console.error(e); process.exit(1); });
