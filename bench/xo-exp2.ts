// temporary experiment: receive cost vs message size, cross-origin iframe
import { launch } from './render-page';
async function main() {
  const browser = await launch();
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  await page.addInitScript('window.__name = (f) => f;');
  const child = `<!DOCTYPE html><html><body><script>
    addEventListener('message', (e) => { const t0 = performance.now(); const d = e.data; const t1 = performance.now(); parent.postMessage({ ack: d.i, get: t1 - t0 }, '*'); });
  </script></body></html>`;
  await page.route('https://child.test/**', (r) => r.fulfill({ status: 200, contentType: 'text/html', body: child }));
  await page.route('https://top.test/**', (r) => r.fulfill({ status: 200, contentType: 'text/html', body: `<!DOCTYPE html><html><body><iframe id="x" src="https://child.test/"></iframe></body></html>` }));
  await page.goto('https://top.test/');
  await page.waitForTimeout(500);
  const TOTAL = 66_060_288;
  for (const rep of [1, 2]) for (const size of [65_536, 131_072, 458_752, 1_048_576, 5_505_024]) for (const kind of ['ab', 'u16']) {
    const r = await page.evaluate(async ([size, TOTAL, kind]) => {
      const f = (document.getElementById('x') as HTMLIFrameElement).contentWindow!;
      const N = Math.round(TOTAL / size);
      const bufs = Array.from({ length: N }, () => { const b = new ArrayBuffer(size); new Uint8Array(b).fill(7); return b; });
      const gets: number[] = [];
      const t0 = performance.now();
      await new Promise<void>((resolve) => {
        let k = 0;
        const on = (e: MessageEvent) => { if (e.data && 'ack' in e.data) { gets.push(e.data.get); if (++k === N) { removeEventListener('message', on); resolve(); } } };
        addEventListener('message', on);
        for (let i = 0; i < N; i++) f.postMessage({ i, data: kind === 'ab' ? bufs[i] : new Uint16Array(bufs[i]) }, '*');
      });
      const total = performance.now() - t0;
      gets.sort((a, b) => a - b);
      return { N, total: Math.round(total), sumGet: Math.round(gets.reduce((a, b) => a + b, 0)), medGet: gets[N >> 1].toFixed(2), maxGet: gets[N - 1].toFixed(1) };
    }, [size, TOTAL, kind] as const);
    console.log(rep, size, kind, JSON.stringify(r));
  }
  await browser.close();
}
main().catch((e) => { console.error(e); process.exit(1); });
