// The standalone HTML report: one file that opens offline in any browser and shows a run with the
// panel's own views (model, heads, matrix, with hovers) beside the source text, whose words light
// up for the hovered token. The page's script and styles are the report bundle
// (webview/report/main.ts, built to out/webview/report.js + report.css), inlined; the run is a
// JSON block (tokens, text, model) and one base64 float16 block per layer. No vscode: the CLI
// writes reports too.
//
// Safety: every text from the run goes in HTML-escaped, or in the JSON block with `<`, `>` and `&`
// escaped (so "</script>" in a token cannot end it); the inlined bundle and styles cannot close
// their elements either; and a Content-Security-Policy allows only those two, by hash: no other
// script, no inline handler, no request of any kind.

import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { checkSnapshot, snapshotShape, type RunSnapshot } from './snapshot';
import { REPORT_RUN_ID, reportLayerId, type ReportRunJson } from './reportFormat';

/** The report bundle, as built. */
export interface ReportAssets {
  script: string;
  style: string;
}

/** Reads the built report bundle from `dir` (out/webview). */
export function readReportAssets(dir: string): ReportAssets {
  const read = (name: string): string => {
    const file = path.join(dir, name);
    if (!fs.existsSync(file)) throw new Error(`the report bundle ${file} is missing: build first (npm run build)`);
    return fs.readFileSync(file, 'utf8');
  };
  return { script: read('report.js'), style: read('report.css') };
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** JSON for a `<script type="application/json">` block: nothing in it can close the element or open a comment. */
export function jsonForScript(value: unknown): string {
  return JSON.stringify(value).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * Script text that cannot end its element early: `</script` becomes `<\/script` (esbuild already
 * writes it so) and `<!--`, after which a `<script` would keep the closing tag from closing,
 * becomes `<\!--`. Both mean the same characters in a string, a template or a regular expression,
 * the only places a bundle has them.
 */
export function inlineScript(js: string): string {
  return js.replace(/<\/(script)/gi, '<\\/$1').replace(/<!--/g, '<\\!--');
}

/** Styles that cannot end their element early (`\/` is `/` in CSS). */
export function inlineStyle(css: string): string {
  return css.replace(/<\/(style)/gi, '<\\/$1');
}

const sha256 = (text: string): string => `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;

/** The report's policy: its one script and one style sheet by hash, nothing else (no network, no other script, no handlers). */
export function reportCsp(script: string, style: string): string {
  return [
    "default-src 'none'",
    `script-src ${sha256(script)}`,
    `style-src ${sha256(style)}`,
    "base-uri 'none'",
    "form-action 'none'",
  ].join('; ');
}

/** Base64 of a layer's float16 patterns (platform order: every platform VS Code runs on is little-endian). */
function base64(layer: Uint16Array): string {
  return Buffer.from(layer.buffer, layer.byteOffset, layer.byteLength).toString('base64');
}

/**
 * The report in pieces, in order (a BERT-base run at T=512 is 100 MB of base64; a caller can write
 * the pieces as they come and report progress); `layersDone` counts the layers in the pieces so far.
 */
export function* reportChunks(s: RunSnapshot, assets: ReportAssets): Generator<{ text: string; layersDone: number }> {
  checkSnapshot(s);
  const [L, H, T] = snapshotShape(s);
  const script = inlineScript(assets.script);
  const style = inlineStyle(assets.style);
  const run: ReportRunJson = {
    format: 'attention-lens-report',
    version: 1,
    model: s.model,
    tokens: s.tokens,
    sourceText: s.sourceText,
    source: s.source,
    truncation: s.truncation,
    notices: s.notices,
    runtime: s.runtime,
    encoding: 'f16',
  };
  const facts = [s.model.id, `${L} layers × ${H} heads`, `${T} tokens`, s.source].filter(Boolean).join(' · ');
  const title = `Attention Lens: ${s.source || s.model.id}`;
  yield {
    layersDone: 0,
    text: `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${escapeHtml(reportCsp(script, style))}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="Attention Lens">
<title>${escapeHtml(title)}</title>
<style>${style}</style>
</head>
<body class="vscode-dark">
<div class="report">
<div id="app"></div>
<aside class="report-source" aria-labelledby="report-source-title">
<h2 class="report-source-title" id="report-source-title">Source text</h2>
<p class="report-facts">${escapeHtml(facts)}</p>
<noscript><p class="report-noscript">The attention views need JavaScript.</p></noscript>
<pre class="source-text" id="source-text">${escapeHtml(s.sourceText.text)}</pre>
</aside>
</div>
<script type="application/json" id="${REPORT_RUN_ID}">${jsonForScript(run)}</script>
`,
  };
  const cells = H * T * T;
  for (let l = 0; l < L; l++) {
    const layer = s.attention.subarray(l * cells, (l + 1) * cells);
    yield { layersDone: l + 1, text: `<script type="application/octet-stream" id="${reportLayerId(l)}">${base64(layer)}</script>\n` };
  }
  yield { layersDone: L, text: `<script>${script}</script>\n</body>\n</html>\n` };
}

/** The whole report as one string. */
export function buildReport(s: RunSnapshot, assets: ReportAssets): string {
  let out = '';
  for (const c of reportChunks(s, assets)) out += c.text;
  return out;
}
