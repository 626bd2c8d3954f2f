// The attention-lens CLI (built out/cli.js): JSON + .npy output, and errors on stderr with a non-zero exit.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AttentionEngine } from '../../src/engine/engine';
import { tempDir, SHARED, STORIES, STORIES_GQA } from './helpers/shared';

const AREN = path.join(SHARED, 'models/aren-transliteration');

const CLI = path.resolve(__dirname, '../../out/cli.js');
const run = (args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, ATTENTION_LENS_CACHE: tempDir() } });

/** Minimal .npy reader: returns the header dict text and the float32 payload. */
function readNpy(file: string): { header: string; data: Float32Array } {
  const bytes = fs.readFileSync(file);
  assert.equal(bytes.subarray(0, 6).toString('latin1'), '\x93NUMPY');
  const len = bytes.readUInt16LE(8);
  const header = bytes.subarray(10, 10 + len).toString('latin1');
  assert.equal((10 + len) % 64, 0, 'data is 64-byte aligned');
  const body = bytes.subarray(10 + len);
  return { header, data: new Float32Array(body.buffer.slice(body.byteOffset, body.byteOffset + body.byteLength)) };
}

describe('attention-lens CLI', () => {
  test('writes <prefix>.json and a float32 <prefix>.npy equal to the engine output', async () => {
    const out = path.join(tempDir(), 'story');
    const text = 'Once upon a time, there was a little girl.';
    const r = run(['--model', STORIES, '--text', text, '--out', out, '--offline']);
    assert.equal(r.status, 0, r.stderr);
    const json = JSON.parse(fs.readFileSync(`${out}.json`, 'utf8'));
    const T = json.tokens.length;
    assert.deepEqual(json.model, { id: STORIES, architecture: 'llama', layers: 5, heads: 8 });
    assert.deepEqual(json.shape, [5, 8, T, T]);
    assert.deepEqual(Object.keys(json.tokens[1]).sort(), ['end', 'special', 'start', 'text']);
    assert.equal(text.slice(json.tokens[1].start, json.tokens[1].end), 'Once');
    const npy = readNpy(`${out}.npy`);
    assert.match(npy.header, /'descr': '<f4', 'fortran_order': False, 'shape': \(5, 8, \d+, \d+\)/);
    const engine = new AttentionEngine({ cacheDir: tempDir(), offline: true });
    const expected = (await engine.analyze(STORIES, text)).attention as Float32Array;
    await engine.dispose();
    assert.equal(npy.data.length, expected.length);
    let worst = 0;
    for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(npy.data[i] - expected[i]));
    assert.ok(worst < 1e-6, `max diff ${worst}`);
  });

  test('exports a fused-attention model (stories260K-gqa) equal to the unfused reference', () => {
    const out = path.join(tempDir(), 'gqa');
    const [c] = JSON.parse(fs.readFileSync(path.join(STORIES_GQA, 'reference/cases.json'), 'utf8'));
    const r = run(['--model', STORIES_GQA, '--text', c.text, '--out', out, '--offline']);
    assert.equal(r.status, 0, r.stderr);
    const npy = readNpy(`${out}.npy`);
    assert.match(npy.header, new RegExp(`'shape': \\(${c.shape.join(', ')}\\)`));
    const ref = fs.readFileSync(path.join(STORIES_GQA, 'reference', c.file));
    const expected = new Float32Array(ref.buffer.slice(ref.byteOffset, ref.byteOffset + ref.byteLength));
    let worst = 0;
    for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(npy.data[i] - expected[i]));
    assert.ok(worst < 1e-4, `max diff ${worst}`);
  });

  test('--file reads the text from a file', () => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, 'in.txt'), 'Lily loved the park.\r\n');
    const r = run(['--model', STORIES, '--file', path.join(dir, 'in.txt'), '--out', path.join(dir, 'o'), '--offline']);
    assert.equal(r.status, 0, r.stderr);
    assert.ok(fs.existsSync(path.join(dir, 'o.npy')));
  });

  test('--generate N appends N greedy tokens, marked generated, and the .npy covers the whole sequence', () => {
    const out = path.join(tempDir(), 'cont');
    const r = run(['--model', STORIES, '--text', 'Once upon a time', '--generate', '5', '--out', out, '--offline']);
    assert.equal(r.status, 0, r.stderr);
    const json = JSON.parse(fs.readFileSync(`${out}.json`, 'utf8'));
    const T = json.tokens.length;
    assert.deepEqual(json.generation, { text: ', there was a little', tokens: 5, finished: false });
    assert.deepEqual(json.tokens.slice(-5).map((t: { generated?: boolean; start: number }) => [t.generated, t.start]), Array(5).fill([true, -1]));
    assert.ok(json.tokens.slice(0, -5).every((t: { generated?: boolean }) => t.generated === undefined));
    assert.deepEqual(json.shape, [5, 8, T, T]);
    assert.match(readNpy(`${out}.npy`).header, new RegExp(`'shape': \\(5, 8, ${T}, ${T}\\)`));
  });

  test('an encoder-decoder writes <prefix>.json, .encoder.npy, .decoder.npy and .cross.npy equal to the reference', () => {
    const out = path.join(tempDir(), 'aren');
    const r = run(['--model', AREN, '--text', 'آتزمون', '--out', out, '--offline']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /generated "atzmon"/);
    const json = JSON.parse(fs.readFileSync(`${out}.json`, 'utf8'));
    assert.deepEqual(json.model, { id: AREN, architecture: 'marian', encoder: { layers: 6, heads: 8 }, decoder: { layers: 6, heads: 8 } });
    assert.equal(json.generatedText, 'atzmon');
    assert.deepEqual([json.targetText, json.forced, json.finished], ['atzmon', false, true]);
    assert.deepEqual(json.shapes, { encoder: [6, 8, 6, 6], decoder: [6, 8, 7, 7], cross: [6, 8, 7, 6] });
    assert.deepEqual(json.sourceTokens.map((t: { start: number; end: number }) => 'آتزمون'.slice(t.start, t.end)), [...'آتزمون']);
    assert.deepEqual(json.targetTokens.map((t: { text: string }) => t.text), ['<s>', ...'atzmon']);
    assert.deepEqual(json.targetTokens[1], { text: 'a', id: 51, start: 0, end: 1, special: false, generated: true });
    const { cases } = JSON.parse(fs.readFileSync(path.join(AREN, 'reference/cases.json'), 'utf8'));
    for (const [suffix, kind] of [['encoder', 'encoder_self_attention'], ['decoder', 'decoder_self_attention'], ['cross', 'cross_attention']]) {
      const npy = readNpy(`${out}.${suffix}.npy`);
      assert.match(npy.header, new RegExp(`'descr': '<f4', 'fortran_order': False, 'shape': \\(${cases[0].files[kind].shape.join(', ')}\\)`));
      const ref = fs.readFileSync(path.join(AREN, 'reference', cases[0].files[kind].file));
      const expected = new Float32Array(ref.buffer.slice(ref.byteOffset, ref.byteOffset + ref.byteLength));
      let worst = 0;
      for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(npy.data[i] - expected[i]));
      assert.ok(worst < 1e-4, `${suffix}: max diff ${worst}`);
    }
  });

  test('--target teacher-forces; --max-new-tokens stops early with a notice', () => {
    const dir = tempDir();
    const forced = run(['--model', AREN, '--text', 'آتزمون', '--target', 'atsmoon', '--out', path.join(dir, 'f'), '--offline']);
    assert.equal(forced.status, 0, forced.stderr);
    const f = JSON.parse(fs.readFileSync(path.join(dir, 'f.json'), 'utf8'));
    assert.deepEqual([f.targetText, f.forced, f.generatedText], ['atsmoon', true, undefined]);
    assert.deepEqual(f.shapes.cross, [6, 8, 8, 6]);
    const short = run(['--model', AREN, '--text', 'محمد', '--max-new-tokens', '3', '--out', path.join(dir, 's'), '--offline']);
    assert.equal(short.status, 0, short.stderr);
    assert.match(short.stderr, /3 new tokens without an end token/);
    const s = JSON.parse(fs.readFileSync(path.join(dir, 's.json'), 'utf8'));
    assert.deepEqual([s.generatedText, s.finished, s.shapes.decoder], ['mah', false, [6, 8, 4, 4]]);
  });

  test('bad arguments and bad models exit non-zero with a message on stderr', () => {
    const out = path.join(tempDir(), 'x');
    const cases: Array<[string[], RegExp]> = [
      [['--text', 'hi', '--out', out], /--model is required/],
      [['--model', STORIES, '--out', out], /exactly one of --text or --file/],
      [['--model', STORIES, '--text', 'hi', '--out', out, '--dtype', 'int4'], /--dtype must be/],
      [['--model', '/no/such/folder', '--text', 'hi', '--out', out], /Model folder not found: \/no\/such\/folder/],
      [['--model', STORIES, '--text', '   ', '--out', out], /empty/],
      [['--model', 'some-org/never-cached', '--text', 'hi', '--out', out, '--offline'], /not in the cache/],
      [['--model', STORIES, '--text', 'hi', '--out', out, '--generate', '0'], /--generate must be a positive integer/],
      [['--model', STORIES, '--text', 'hi', '--out', out, '--target', 'x', '--offline'], /--target is for encoder-decoder models/],
      [['--model', STORIES, '--text', 'hi', '--out', out, '--max-new-tokens', '4', '--offline'], /--generate N/],
      [['--model', AREN, '--text', 'محمد', '--out', out, '--generate', '4', '--offline'], /--generate is not available for an encoder-decoder/],
      [['--model', AREN, '--text', 'م'.repeat(600), '--out', out, '--offline'], /600 tokens long.*at most 512/],
    ];
    for (const [args, message] of cases) {
      const r = run(args);
      assert.notEqual(r.status, 0, args.join(' '));
      assert.match(r.stderr, message);
      assert.equal(r.stdout, '');
    }
    assert.equal(fs.existsSync(`${out}.json`), false);
  });
});
