// temporary experiment: attribute code growth in the framed panel to functions
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
  const ef = s.snapshot.meta.edge_fields; const etypes = s.snapshot.meta.edge_types[0];
  const [ti, ni, si, eci, st] = [f.indexOf('type'), f.indexOf('name'), f.indexOf('self_size'), f.indexOf('edge_count'), f.length];
  const est = ef.length, eto = ef.indexOf('to_node'), ety = ef.indexOf('type'), ena = ef.indexOf('name_or_index');
  const n = s.nodes.length / st;
  const parents: number[][] = Array.from({ length: n }, () => []);
  const pname: string[][] = Array.from({ length: n }, () => []);
  let e = 0;
  for (let i = 0; i < n; i++) {
    const ec = s.nodes[i * st + eci];
    for (let k = 0; k < ec; k++, e += est) {
      const to = s.edges[e + eto] / st;
      if (etypes[s.edges[e + ety]] === 'weak') continue;
      parents[to].push(i);
      const et = etypes[s.edges[e + ety]];
      pname[to].push(et === 'element' || et === 'hidden' ? String(s.edges[e + ena]) : s.strings[s.edges[e + ena]]);
    }
  }
  const name = (i: number) => `${types[s.nodes[i * st + ti]]}:${s.strings[s.nodes[i * st + ni]]}`;
  const m = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    if (types[s.nodes[i * st + ti]] !== 'code') continue;
    // walk up to a closure or named SFI
    let owner = '?';
    const seen = new Set([i]); let frontier = [i];
    for (let d = 0; d < 5 && owner === '?'; d++) {
      const next: number[] = [];
      for (const x of frontier) for (const p of parents[x]) {
        if (seen.has(p)) continue; seen.add(p);
        const nm = name(p);
        if (nm.startsWith('closure:') || (nm.startsWith('code:') && !nm.startsWith('code:system') && !nm.startsWith('code:(') )) { owner = nm; break; }
        next.push(p);
      }
      frontier = next;
    }
    const k = `${owner} <- ${name(i).replace(/\d+/g, '#')}`;
    m.set(k, (m.get(k) ?? 0) + s.nodes[i * st + si]);
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
  for (let i = 2; i <= N; i++) await feed(i);
  const b = await snap(p.cdp);
  const keys = new Set([...a.keys(), ...b.keys()]);
  const d = [...keys].map((k) => [k, (b.get(k) ?? 0) - (a.get(k) ?? 0)] as const).filter(([, v]) => Math.abs(v) > 1500).sort((x, y) => y[1] - x[1]);
  for (const [k, v] of d.slice(0, 45)) console.log(v, k);
  await p.close();
  await browser.close();
}
main().catch((e) => { console.error(e); process.exit(1); });
