// Last section: every target of the issue ("Fluid at 512 tokens") beside its measured value, from
// this run's sections (or, for sections not run this time, from the previous bench/out/latest.json).
import * as fs from 'node:fs';
import { OUT, table } from './util';
import { TARGETS, loadAvg, verdict, type Target } from './targets';

type Results = Record<string, any>;

export function summarize(current: Results) {
  const previous: Results = fs.existsSync(OUT) ? JSON.parse(fs.readFileSync(OUT, 'utf8')) : {};
  const get = (section: string, ...keys: string[]): { value: number | null; stale: boolean } => {
    for (const [src, stale] of [[current, false], [previous, true]] as const) {
      let v: any = src[section];
      for (const k of keys) v = v?.[k];
      if (typeof v === 'number') return { value: v, stale };
    }
    return { value: null, stale: false };
  };
  const rows: Array<{ target: string; key: string; value: number | null; stale: boolean; t: Target }> = [];
  const add = (label: string, t: Target, section: string, ...keys: string[]) => {
    const { value, stale } = get(section, ...keys);
    rows.push({ target: label, key: `${section}.${keys.join('.')}`, value, stale, t });
  };
  add('exposed/plain forward, T=128', TARGETS.ratioT128, 'engine', 'T128', 'ratio');
  add('exposed/plain forward, T=512', TARGETS.ratioT512, 'engine', 'T512', 'ratio');
  add('exposed/plain forward, fused GQA (Qwen2.5-0.5B-shaped, fp32), T=512', TARGETS.fusedRatioT512, 'fused', 'T512', 'ratio');
  add('exposed/plain forward, fused GQA (Qwen2.5-0.5B-shaped, q4), T=512', TARGETS.fusedRatioT512, 'fused', 'q4', 'T512', 'ratio');
  add('bytes per attention cell sent, T=512', TARGETS.bytesPerCell, 'transfer', 'T512', 'bytes_per_cell');
  add('all layers painted, T=128 (re-run)', TARGETS.allLayersT128, 'render', 'T128', 'all_layers_ms');
  add('all layers painted, T=128 (fresh panel)', TARGETS.allLayersT128, 'render', 'T128', 'cold_all_layers_ms');
  add('all layers painted, T=512 (re-run)', TARGETS.allLayersT512, 'render', 'T512', 'all_layers_ms');
  add('all layers painted, T=512 (fresh panel)', TARGETS.allLayersT512, 'render', 'T512', 'cold_all_layers_ms');
  add('all layers painted, T=128, cross-origin frame (re-run)', TARGETS.allLayersT128, 'render', 'T128', 'framed_all_layers_ms');
  add('all layers painted, T=512, cross-origin frame (re-run)', TARGETS.allLayersT512, 'render', 'T512', 'framed_all_layers_ms');
  add('all layers painted, T=128, cross-origin frame (fresh panel)', TARGETS.allLayersT128, 'render', 'T128', 'framed_cold_all_layers_ms');
  add('all layers painted, T=512, cross-origin frame (fresh panel)', TARGETS.allLayersT512, 'render', 'T512', 'framed_cold_all_layers_ms');
  {
    // From the end of the forward pass: the worker's thumbnails, then the panel (summed, though
    // the panel starts painting with the first layer's thumbnails: an upper bound).
    const thumbs = get('engine', 'T512', 'thumbs_ms');
    const paint = get('render', 'T512', 'framed_cold_all_layers_ms');
    rows.push({
      target: 'all layers painted after the forward pass, T=512: worker thumbnails + cross-origin fresh panel',
      key: 'engine.T512.thumbs_ms+render.T512.framed_cold_all_layers_ms',
      value: thumbs.value === null || paint.value === null ? null : Math.round(thumbs.value + paint.value),
      stale: thumbs.stale || paint.stale,
      t: TARGETS.allLayersT512,
    });
  }
  add('hover p95, T=512, head view', TARGETS.hoverP95T512, 'render', 'T512', 'hover_head_p95_ms');
  add('hover p95, T=512, matrix view', TARGETS.hoverP95T512, 'render', 'T512', 'hover_matrix_p95_ms');
  add('host event-loop block during a run (warm)', TARGETS.hostBlock, 'host', 'max_block_ms');
  add('host event-loop block, first run (model load)', TARGETS.hostBlock, 'host', 'max_block_cold_ms');
  add('activation (code-server)', TARGETS.activation, 'host', 'activation_ms');
  add('host heap growth, 50 runs', TARGETS.heapGrowth, 'memory', 'host_growth');
  add('webview JS heap + ArrayBuffers, after run 50 / after run 1', TARGETS.webviewGrowth, 'memory', 'webview_growth');
  add('webview JS heap, after run 150 / after run 100', TARGETS.webviewLateGrowth, 'memory', 'webview_heap_late_growth');
  add('webview DOM nodes, most differing from run 1 (to run 150)', TARGETS.domNodesChange, 'memory', 'webview_dom_nodes_change');
  add('extension host RSS growth, 50 runs in a row (code-server)', TARGETS.hostRssGrowth, 'reliability', 'host_rss_growth');
  add('newest of runs in a row: host done -> panel painted', TARGETS.newestRunShown, 'reliability', 'newest_run_shown_ms');
  add('plain analyze after a qkv capture kept / never captured, T=512', TARGETS.explainPlainRatio, 'explain', 'T512', 'plain_ratio');
  add('Why this weight?: click -> view painted p95, capture kept, T=512', TARGETS.explainOpen, 'explain', 'T512', 'open_ms_p95');
  add('long input: forward pass -> all layers\' thumbnails in the host (panel painting not included), T=4096', TARGETS.longctxGridT4096, 'longctx', 'T4096', 'grid_ms');
  add('long input: one token\'s rows of every layer, request -> received p95, T=4096', TARGETS.longctxRowP95T4096, 'longctx', 'T4096', 'row_ms_p95');
  add('long input: worker peak RSS above the loaded model, T=8192', TARGETS.longctxPeakT8192, 'longctx', 'T8192', 'worker_peak_mb');
  for (const T of [2048, 4096, 8192]) add(`long input: host event-loop block while the worker runs, T=${T}`, TARGETS.hostBlock, 'longctx', `T${T}`, 'host_max_block_ms');
  table('targets (PASS/MISS; values marked * come from an earlier run)', rows.map((r) => ({
    target: r.target,
    measured: r.value === null ? 'n/a' : `${r.value}${r.stale ? ' *' : ''}`,
    goal: r.t.label,
    '': verdict(r.value, r.t),
    key: r.key,
  })));
  const out: Record<string, unknown> = { load_avg_end: loadAvg() };
  for (const r of rows) out[r.key] = { value: r.value, target: r.t.label, verdict: verdict(r.value, r.t), from_earlier_run: r.stale };
  return out;
}
