// The exports (src/export): the standalone HTML report (escaping, its Content-Security-Policy, no
// inline handlers, the float16 attention round-trips bit for bit), the .npy + .json data from a
// run, and the CLI's --html. Uses the built report bundle (out/webview/report.js, report.css) and
// the CLI (out/cli.js): npm run build first.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AttentionEngine } from '../../src/engine/engine';
import { runPayloads } from '../../src/engine/payloads';
import { runStartMessage } from '../../src/run/messages';
import { Run } from '../../src/run/run';
import { encodeF16, f16Lut } from '../../src/analysis/f16';
import { buildReport, readReportAssets } from '../../src/export/report';
import { REPORT_RUN_ID, reportLayerId, type ReportRunJson } from '../../src/export/reportFormat';
import { snapshotOfRun, type RunSnapshot } from '../../src/export/snapshot';
import { npyChunks, snapshotJson } from '../../src/export/data';
import { STORIES, tempDirs } from './helpers/shared';

const ROOT = path.resolve(__dirname, '../..');
const CLI = path.join(ROOT, 'out/cli.js');
const newDir = tempDirs('al-export-');
const assets = () => readReportAssets(path.join(ROOT, 'out/webview'));

const EVIL = '<img src=x onerror=alert(1)>';
const TEXT = `Lily said ${EVIL} and </script><script>alert(2)</script> <!-- to the dog.`;

/** A real stories260K run as the extension holds it: the worker's payloads (bit-packed layers) into the run model. */
async function realRun(text: string, offset = 0): Promise<{ run: Run; attention: Uint16Array }> {
  const engine = new AttentionEngine({ cacheDir: newDir(), offline: true });
  try {
    const result = await engine.analyze(STORIES, text, { encoding: 'f16' });
    const run = new Run(runStartMessage(result, { runId: 1, text, offset, label: 'x' }));
    for (const p of runPayloads(result)) run.add(p);
    return { run, attention: result.attention as Uint16Array };
  } finally {
    await engine.dispose();
  }
}

interface ParsedReport {
  csp: string;
  title: string;
  json: ReportRunJson;
  layers: Uint16Array[];
  /** Text of every <script> element (attributes, content), in order. */
  scripts: { attrs: string; body: string }[];
  styles: string[];
  /** The document with every script and style element's content removed: what the HTML parser reads as markup. */
  markup: string;
}

function parseReport(html: string): ParsedReport {
  const scripts = [...html.matchAll(/<script([^>]*)>([\s\S]*?)<\/script>/g)].map((m) => ({ attrs: m[1], body: m[2] }));
  const styles = [...html.matchAll(/<style>([\s\S]*?)<\/style>/g)].map((m) => m[1]);
  const csp = /<meta http-equiv="Content-Security-Policy" content="([^"]*)">/.exec(html)?.[1] ?? '';
  const title = /<title>([^<]*)<\/title>/.exec(html)?.[1] ?? '';
  const byId = (id: string) => scripts.find((s) => s.attrs.includes(`id="${id}"`))?.body;
  const json = JSON.parse(byId(REPORT_RUN_ID) ?? 'null') as ReportRunJson;
  const layers: Uint16Array[] = [];
  for (let l = 0; byId(reportLayerId(l)) !== undefined; l++) {
    const bytes = Buffer.from(byId(reportLayerId(l))!, 'base64');
    layers.push(new Uint16Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)));
  }
  const markup = html.replace(/(<script[^>]*>)[\s\S]*?(<\/script>)/g, '$1$2').replace(/(<style>)[\s\S]*?(<\/style>)/g, '$1$2');
  return { csp, title, json, layers, scripts, styles, markup };
}

const entities = (s: string) => s.replace(/&#(\d+);/g, (_, n) => String.fromCharCode(Number(n)));
const sha256 = (s: string) => createHash('sha256').update(s, 'utf8').digest('base64');

describe('HTML report', () => {
  test('markup in the text, tokens, label and model id is escaped; only real elements close', async () => {
    const { run } = await realRun(TEXT, 7);
    const snapshot = snapshotOfRun(run, { source: `story.txt:1 ${EVIL}` })!;
    snapshot.model = { ...snapshot.model, id: `"><script>alert(4)</script>` };
    const html = buildReport(snapshot, assets());
    const r = parseReport(html);
    // Nothing from the run became markup: the only tags are the report's own.
    assert.ok(!r.markup.includes('<img'), 'no <img> tag');
    assert.equal([...r.markup.matchAll(/<script/g)].length, 2 + run.L, 'script elements: the run, a block per layer, the bundle');
    assert.equal([...html.matchAll(/<\/script/gi)].length, 2 + run.L, 'every </script in the file closes one of them');
    assert.ok(r.markup.includes(`<pre class="source-text" id="source-text">${'Lily said &#60;img src=x onerror=alert(1)&#62;'}`), 'the text is escaped in place');
    assert.equal(entities(/<pre class="source-text" id="source-text">([^<]*)<\/pre>/.exec(r.markup)![1]), TEXT);
    assert.equal(entities(r.title), `Attention Lens: story.txt:1 ${EVIL}`);
    // The JSON block holds every string as written, with nothing that could end it early.
    const block = r.scripts.find((s) => s.attrs.includes(REPORT_RUN_ID))!.body;
    assert.doesNotMatch(block, /[<>&]/);
    assert.equal(r.json.sourceText.text, TEXT);
    assert.equal(r.json.sourceText.offset, 7);
    assert.equal(r.json.model.id, snapshot.model.id);
    assert.deepEqual(r.json.tokens, run.tokens);
    assert.equal(r.json.source, snapshot.source);
    // The bundle can neither close its element nor start the parser's escaped-script states.
    const bundle = r.scripts.at(-1)!;
    assert.equal(bundle.attrs, '', 'the bundle is a plain script');
    assert.doesNotMatch(bundle.body, /<\/script|<!--/i);
  });

  test('a restrictive Content-Security-Policy: the one script and style by hash, no network, no inline handlers', async () => {
    const { run } = await realRun('Once upon a time, Lily saw a dog.');
    const html = buildReport(snapshotOfRun(run, { source: 'a.txt:1' })!, assets());
    const r = parseReport(html);
    const head = html.slice(0, html.indexOf('</head>'));
    assert.ok(head.indexOf('Content-Security-Policy') < head.indexOf('<style>'), 'the policy comes before anything it governs');
    const csp = entities(r.csp);
    const directives = Object.fromEntries(csp.split(';').map((d) => d.trim().split(/\s+/)).map(([k, ...v]) => [k, v]));
    assert.deepEqual(directives['default-src'], ["'none'"]);
    assert.deepEqual(directives['script-src'], [`'sha256-${sha256(r.scripts.at(-1)!.body)}'`], 'the bundle, by hash');
    assert.deepEqual(directives['style-src'], [`'sha256-${sha256(r.styles[0])}'`], 'the styles, by hash');
    assert.deepEqual(directives['base-uri'], ["'none'"]);
    assert.deepEqual(directives['form-action'], ["'none'"]);
    assert.doesNotMatch(csp, /unsafe|https?:|\*|data:|blob:|connect-src/, 'nothing loosens it and nothing may be fetched');
    assert.equal(r.styles.length, 1);
    // No element carries an inline handler (the policy would refuse one anyway), and nothing loads from elsewhere.
    for (const tag of r.markup.match(/<[a-zA-Z][^>]*>/g)!) {
      assert.doesNotMatch(tag, /\son[a-z]+\s*=/i, tag);
      assert.doesNotMatch(tag, /\s(src|href)\s*=/i, tag);
    }
  });

  test('the attention round-trips bit for bit: the worker\'s packed layers -> run model -> report -> decoded', async () => {
    const { run, attention } = await realRun('Once upon a time, there was a little girl named Lily. She loved to play outside.');
    const snapshot = snapshotOfRun(run, { source: 's.txt:2', runtime: 'onnxruntime-node cpu' })!;
    const r = parseReport(buildReport(snapshot, assets()));
    assert.equal(r.json.encoding, 'f16');
    assert.equal(r.json.runtime, 'onnxruntime-node cpu');
    assert.equal(r.layers.length, run.L);
    const cells = run.H * run.T * run.T;
    for (let l = 0; l < run.L; l++) assert.deepEqual(r.layers[l], attention.subarray(l * cells, (l + 1) * cells), `layer ${l + 1}`);
  });

  test('an incomplete run gives no snapshot; a wrong-sized one is refused', async () => {
    const { run } = await realRun('Lily saw a dog.');
    const partial = new Run({ type: 'run/start', runId: 2, model: run.model, tokens: run.tokens, encoding: 'f16', source: '', truncation: null, notices: [], sourceText: run.sourceText! });
    assert.equal(snapshotOfRun(partial, { source: '' }), null);
    const bad: RunSnapshot = { ...snapshotOfRun(run, { source: '' })!, attention: new Uint16Array(3) };
    assert.throws(() => buildReport(bad, assets()), /attention has 3 cells/);
  });
});

describe('data export (.npy + .json) from a run', () => {
  test('float32 [L, H, T, T] equal to the run\'s float16; JSON tokens relative to the text, which it holds', async () => {
    const text = 'Once upon a time, Lily found a red ball.';
    const offset = 40;
    const { run, attention } = await realRun(text, offset);
    const snapshot = snapshotOfRun(run, { source: 'story.txt:3' })!;
    const bytes = Buffer.concat([...npyChunks(snapshot)]);
    const headerLen = bytes.readUInt16LE(8);
    assert.equal(bytes.subarray(0, 6).toString('latin1'), '\x93NUMPY');
    assert.equal((10 + headerLen) % 64, 0);
    assert.match(bytes.subarray(10, 10 + headerLen).toString('latin1'), new RegExp(`'descr': '<f4', 'fortran_order': False, 'shape': \\(5, 8, ${run.T}, ${run.T}\\)`));
    const body = bytes.subarray(10 + headerLen);
    const floats = new Float32Array(body.buffer.slice(body.byteOffset, body.byteOffset + body.byteLength));
    assert.equal(floats.length, attention.length);
    const lut = f16Lut();
    for (let i = 0; i < floats.length; i++) if (floats[i] !== lut[attention[i]]) assert.fail(`cell ${i}: ${floats[i]} != ${lut[attention[i]]}`);

    const source = { document: 'file:///w/story.txt', offset, label: 'story.txt:3' };
    const json = JSON.parse(JSON.stringify(snapshotJson(snapshot, source)));
    assert.deepEqual(Object.keys(json), ['model', 'tokens', 'shape', 'truncation', 'text', 'source', 'axes', 'layerNames', 'headNames']);
    assert.deepEqual(json.model, { id: STORIES, architecture: 'llama', layers: 5, heads: 8 });
    assert.deepEqual(json.shape, [5, 8, run.T, run.T]);
    assert.equal(json.text, text);
    assert.deepEqual(json.source, source);
    assert.deepEqual(json.axes, ['layer', 'head', 'query', 'key']);
    assert.deepEqual(json.layerNames, ['layer 1', 'layer 2', 'layer 3', 'layer 4', 'layer 5']);
    assert.equal(json.headNames.length, 8);
    assert.equal(json.tokens[0].special, true);
    assert.equal(json.tokens[0].start, -1);
    const lily = json.tokens.find((t: { text: string }) => t.text === '▁Lily');
    assert.equal(text.slice(lily.start, lily.end), 'Lily', 'offsets into the text, as the CLI writes them');
  });
});

describe('attention-lens --html', () => {
  const cli = (args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, ATTENTION_LENS_CACHE: newDir() } });

  test('writes the report beside --out, its attention the float16 of the .npy; alone without --out', () => {
    const dir = newDir();
    const file = path.join(dir, 'in.txt');
    fs.writeFileSync(file, `Lily loved the park. ${EVIL}\n`);
    const r = cli(['--model', STORIES, '--file', file, '--out', path.join(dir, 'o'), '--html', path.join(dir, 'sub', 'o.html'), '--offline']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /wrote .*o\.html/);
    const report = parseReport(fs.readFileSync(path.join(dir, 'sub', 'o.html'), 'utf8'));
    const meta = JSON.parse(fs.readFileSync(path.join(dir, 'o.json'), 'utf8'));
    assert.deepEqual(Object.keys(meta), ['model', 'tokens', 'shape', 'truncation'], 'the CLI\'s JSON is as it was');
    assert.deepEqual(report.json.tokens, meta.tokens, 'the same tokens (offsets into the file\'s text)');
    assert.equal(report.json.source, 'in.txt');
    assert.equal(report.json.sourceText.text, fs.readFileSync(file, 'utf8'));
    assert.ok(!report.markup.includes('<img'));
    const npy = fs.readFileSync(path.join(dir, 'o.npy'));
    const h = npy.readUInt16LE(8);
    const f32 = new Float32Array(npy.buffer.slice(npy.byteOffset + 10 + h, npy.byteOffset + npy.byteLength));
    const expected = encodeF16(f32);
    const cells = expected.length / report.layers.length;
    report.layers.forEach((layer, l) => assert.deepEqual(layer, expected.subarray(l * cells, (l + 1) * cells), `layer ${l + 1}`));

    const alone = path.join(dir, 'alone.html');
    const r2 = cli(['--model', STORIES, '--text', 'Lily saw a dog.', '--html', alone, '--offline']);
    assert.equal(r2.status, 0, r2.stderr);
    assert.ok(fs.statSync(alone).size > 1000);
    assert.deepEqual(fs.readdirSync(dir).sort(), ['alone.html', 'in.txt', 'o.json', 'o.npy', 'sub']);
  });

  test('without --out or --html it says what is missing', () => {
    const r = cli(['--model', STORIES, '--text', 'hi']);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--out is required \(or --html\)/);
  });
});
