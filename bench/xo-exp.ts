// temporary experiment: cost of receiving ArrayBuffers in a cross-origin iframe
import { launch } from './render-page';

async function main() {
  const browser = await launch();
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  await page.addInitScript('window.__name = (f) => f;');
  const child = `<!DOCTYPE html><html><body><script>
    window.__times = [];
    addEventListener('message', (e) => { const t0 = performance.now(); const d = e.data; const t1 = performance.now(); let s = 0; const u = new Uint8Array(d.data); for (let i = 0; i < u.length; i += 4096) s += u[i]; const t2 = performance.now(); window.__times.push([t1 - t0, t2 - t1]); parent.postMessage({ ack: d.i, get: t1 - t0, touch: t2 - t1 }, '*'); });
  </script></body></html>`;
  await page.route('https://child.test/**', (r) => r.fulfill({ status: 200, contentType: 'text/html', body: child }));
  await page.route('https://same.test/**', (r) => {
    const u = new URL(r.request().url());
    if (u.pathname === '/child') return r.fulfill({ status: 200, contentType: 'text/html', body: child });
    return r.fulfill({ status: 200, contentType: 'text/html', body: `<!DOCTYPE html><html><body><iframe id="x" src="https://child.test/"></iframe><iframe id="s" src="https://same.test/child"></iframe></body></html>` });
  });
  await page.goto('https://same.test/');
  await page.waitForTimeout(500);
  for (const target of ['x', 's']) for (const mode of ['clone', 'transfer']) for (const burst of [false, true]) {
    const r = await page.evaluate(async ([target, mode, burst]) => {
      const f = (document.getElementById(target as string) as HTMLIFrameElement).contentWindow!;
      const res: any[] = [];
      const N = 12;
      const bufs = Array.from({ length: N }, () => { const b = new ArrayBuffer(5_505_024); new Uint8Array(b).fill(7); return b; });
      const t0 = performance.now();
      await new Promise<void>((resolve) => {
        let k = 0;
        const on = (e: MessageEvent) => { if (e.data && 'ack' in e.data) { res.push(e.data); if (++k === N) { removeEventListener('message', on); resolve(); } else if (!burst) send(k); } };
        addEventListener('message', on);
        const send = (i: number) => f.postMessage({ i, data: bufs[i] }, '*', mode === 'transfer' ? [bufs[i]] : []);
        if (burst) for (let i = 0; i < N; i++) send(i); else send(0);
      });
      const total = performance.now() - t0;
      const get = res.map((x) => x.get).sort((a, b) => a - b);
      const touch = res.map((x) => x.touch).sort((a, b) => a - b);
      return { total: Math.round(total), get_med: get[6].toFixed(1), get_max: get[11].toFixed(1), touch_med: touch[6].toFixed(1) };
    }, [target, mode, burst] as const);
    console.log(target === 'x' ? 'cross-origin' : 'same-origin', mode, burst ? 'burst' : 'one-by-one', JSON.stringify(r));
  }
  await browser.close();
}
main().catch((e) => { console.error(e); process.exit(1); });
