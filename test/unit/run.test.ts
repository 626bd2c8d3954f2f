// The seam between engine, host and panel: the one translation (src/run/messages.ts) and the one
// run model (src/run/run.ts). A real stories260K run goes engine -> payloads -> panel messages ->
// validator -> the panel's run, and straight into the host's run: both hold the engine's attention
// bit for bit, and the editor's and the panel's top words agree.
import { test, describe, before } from 'node:test';
import assert from 'node:assert/strict';
import { AttentionEngine } from '../../src/engine/engine';
import type { AttentionResult } from '../../src/engine/types';
import { runPayloads } from '../../src/engine/payloads';
import { payloadMessages, runDoneMessage, runStartMessage } from '../../src/run/messages';
import { Run } from '../../src/run/run';
import { parseHostMessage } from '../../src/protocol/validate';
import { aggregationFromWire, aggregationLabel, aggregationToWire, parseAggregation, type Aggregation } from '../../src/protocol/attention';
import { decodeLayer, layerTensor, meanHeads, rolloutRow, topAttended, PART_BYTES } from '../../src/analysis';
import { RunData } from '../../webview/store';
import { tempDir, STORIES } from './helpers/shared';

const STORY = 'Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her dog.';
/** Text before the selection in its document: token offsets are shifted by it. */
const PREFIX = '# Notes\n\n';

let short: AttentionResult;
let long: AttentionResult;
let longText: string;

before(async () => {
  const engine = new AttentionEngine({ cacheDir: tempDir(), runtime: 'cpu', offline: true });
  try {
    short = await engine.analyze(STORIES, STORY, { encoding: 'f16' });
    // Long enough for thumbnails (T > 128) and for layers sent in parts (> 1 MB packed); cut by maxTokens.
    longText = Array.from({ length: 14 }, () => STORY).join(' ');
    long = await engine.analyze(STORIES, longText, { encoding: 'f16', maxTokens: 320 });
  } finally {
    await engine.dispose();
  }
});

/** What the controller sends for a result, and what the panel's validator makes of it. */
function messagesOf(result: AttentionResult, text: string, runId = 7) {
  const start = runStartMessage(result, { runId, text, offset: PREFIX.length, label: 'notes.md:3' });
  const payloads = [...runPayloads(result)];
  const attention = payloads.flatMap((p) => payloadMessages(runId, p, result.encoding));
  return { start, payloads, attention, done: runDoneMessage(runId, result) };
}

describe('translation: engine output -> panel messages', () => {
  test('run/start: tokens at absolute document offsets, the model shape, the analysed text', () => {
    const { start } = messagesOf(short, STORY);
    const doc = PREFIX + STORY;
    assert.deepEqual([start.model.layers, start.model.heads], [5, 8]);
    assert.equal(start.tokens.length, short.shape[2]);
    assert.deepEqual(start.sourceText, { offset: PREFIX.length, text: STORY });
    for (const [i, t] of start.tokens.entries()) {
      if (t.special) assert.deepEqual([t.start, t.end], [-1, -1]);
      else assert.equal(doc.slice(t.start, t.end), STORY.slice(short.tokens[i].start, short.tokens[i].end));
    }
    assert.equal(parseHostMessage(start)?.type, 'run/start', 'the validator accepts it');
  });

  test('a cut input: the source text is what was analysed, the truncation says how much', () => {
    const { start } = messagesOf(long, longText);
    assert.ok(long.truncation, 'cut to maxTokens');
    assert.equal(start.sourceText?.text, longText.slice(0, long.truncation!.endOffset));
    assert.deepEqual(start.truncation, { total: long.truncation!.total, kept: long.truncation!.kept });
    const last = start.tokens.filter((t) => !t.special).pop()!;
    assert.ok(last.end <= PREFIX.length + start.sourceText!.text.length, 'no token beyond the analysed text');
  });

  test('the header label describes the text actually analysed, not the whole selection', () => {
    const seen: { start: number; end: number }[] = [];
    const start = runStartMessage(long, { runId: 1, text: longText, offset: 5, label: (r) => (seen.push(r), `${r.start}-${r.end}`) });
    assert.deepEqual(seen, [{ start: 5, end: 5 + long.truncation!.endOffset }]);
    assert.equal(start.source, `5-${5 + long.truncation!.endOffset}`);
  });

  test("a selection the host cut: counts of the whole are lower bounds ('more than'), also when all of the cut text fits", async () => {
    const engine = new AttentionEngine({ cacheDir: tempDir(), runtime: 'cpu', offline: true });
    try {
      const cut = await engine.analyze(STORIES, longText, { encoding: 'f16', maxTokens: 64, textContinues: true });
      assert.equal(cut.truncation?.atLeast, true);
      assert.ok(cut.notices.some((n) => /cut to 64 of more than \d+ tokens/.test(n)), cut.notices.join(' | '));
      const msg = runStartMessage(cut, { runId: 1, text: longText, offset: 0, label: 'x' });
      assert.equal((parseHostMessage(msg) as typeof msg).truncation?.atLeast, true, 'it reaches the panel');
      const fits = await engine.analyze(STORIES, STORY, { encoding: 'f16', textContinues: true });
      assert.deepEqual(fits.truncation, { total: fits.tokens.length, kept: fits.tokens.length, endOffset: STORY.length, atLeast: true });
      const whole = await engine.analyze(STORIES, STORY, { encoding: 'f16' });
      assert.equal(whole.truncation, null, 'an uncut text is not truncated');
      // A limit that leaves room only for the model's own special tokens says so.
      await assert.rejects(engine.analyze(STORIES, STORY, { maxTokens: 1 }), /limit of 1 tokens leaves no room for the text: the model adds 1 special token/);
    } finally {
      await engine.dispose();
    }
  });

  test('run/done carries the timings and runtime', () => {
    const { done } = messagesOf(short, STORY);
    assert.deepEqual(done, { type: 'run/done', runId: 7, timings: { ...short.timings }, runtime: short.runtime });
  });
});

describe('one run model on both sides', () => {
  for (const which of ['short', 'long'] as const) {
    test(`${which}: the host's run (payloads) and the panel's (validated messages) hold the engine's attention exactly`, () => {
      const result = which === 'short' ? short : long;
      const { start, payloads, attention } = messagesOf(result, which === 'short' ? STORY : longText);
      const [L, H, T] = result.shape;
      const host = new Run(start);
      for (const p of payloads) host.add(p);
      const panel = new RunData(parseHostMessage(start) as typeof start);
      let parts = 0;
      for (const raw of attention) {
        const m = parseHostMessage(raw);
        assert.ok(m && (m.type === 'run/layer' || m.type === 'run/thumbs'));
        if (m.type === 'run/layer') {
          if (m.start !== undefined) parts++;
          panel.addLayer(m);
        } else panel.addThumbs(m);
      }
      if (which === 'long') {
        assert.ok(parts > L, `layers of ${H}x${T}x${T} travel in parts of <= ${PART_BYTES} bytes (${parts} parts)`);
        assert.equal(panel.thumbsArrived, L, 'thumbnails for every layer');
      }
      assert.ok(host.complete && panel.complete);
      const all = result.attention as Uint16Array;
      const stride = H * T * T;
      for (let l = 0; l < L; l++) {
        const expected = decodeLayer(layerTensor(all.subarray(l * stride, (l + 1) * stride), 'f16', H, T));
        assert.deepEqual(decodeLayer(host.layer(l)!), expected, `host layer ${l}`);
        assert.deepEqual(decodeLayer(panel.layer(l)!), expected, `panel layer ${l}`);
      }
    });
  }

  test("the editor's top words equal the panel's for a head, the mean and rollout; hidden specials too", () => {
    const { start, payloads } = messagesOf(short, STORY);
    const host = new Run(start);
    const panel = new RunData(start);
    for (const p of payloads) {
      host.add(p);
      panel.add(p);
    }
    const T = host.T;
    while (host.stepMeans()); // what the editor does a head per turn
    for (let l = 0; l < host.L; l++) while (panel.stepRollout(l, false));
    for (const agg of [0, 5, 'mean', 'rollout'] as Aggregation[]) {
      for (const hideSpecial of agg === 'rollout' ? [false] : [false, true]) {
        panel.setHideSpecial(hideSpecial);
        for (let q = 0; q < T; q += 3) {
          const focus = { layer: 3, agg, hideSpecial };
          const m = panel.matrix(3, agg)!;
          const mine = topAttended(m.subarray(q * T, (q + 1) * T), panel.tokens, panel.words, 5);
          const theirs = host.attended(q, 5, focus)!;
          assert.deepEqual(theirs.map((w) => w.text), mine.map((w) => w.text), `${aggregationLabel(agg)} q=${q} hide=${hideSpecial}`);
          for (const [i, w] of theirs.entries()) assert.ok(Math.abs(w.weight - mine[i].weight) < 1e-5);
        }
      }
    }
  });

  test('head means summed a head at a time equal meanHeads; rollout waits for them', () => {
    const { start, payloads } = messagesOf(short, STORY);
    const run = new Run(start);
    for (const p of payloads) run.add(p);
    const focus = { layer: 4, agg: 'rollout' as const, hideSpecial: false };
    assert.equal(run.attended(0, 5, focus), null, 'not before the means are computed');
    let steps = 0;
    while (run.stepMeans()) steps++;
    assert.equal(steps, run.L * run.H, 'one head per step');
    for (let l = 0; l < run.L; l++) assert.deepEqual(run.mean(l), meanHeads(run.layer(l)!));
    const q = 9;
    const row = rolloutRow(Array.from({ length: run.L }, (_, l) => run.mean(l)!), run.T, q, 4);
    assert.deepEqual(run.attended(q, 3, focus), topAttended(row, run.tokens, run.words, 3));
  });

  test('a payload that does not fit the run is refused', () => {
    const { start } = messagesOf(short, STORY);
    const run = new Run(start);
    assert.throws(() => run.addLayer({ layer: 0, data: new ArrayBuffer(10), packed: false }));
    assert.throws(() => run.addLayer({ layer: 5, data: new ArrayBuffer(10), packed: false }), /out of range/);
    assert.throws(() => run.addThumbs({ layer: 0, size: run.T, data: new ArrayBuffer(10), packed: false }), /thumbnails/);
    assert.equal(run.arrived, 0);
  });
});

describe('aggregations on the wire', () => {
  test('head, mean and rollout round-trip through the wire form and their string form', () => {
    for (const a of [0, 7, 'mean', 'rollout'] as Aggregation[]) {
      assert.equal(aggregationFromWire(aggregationToWire(a)), a);
      assert.equal(parseAggregation(String(a)), a);
    }
    assert.deepEqual(aggregationToWire('rollout'), { head: 'mean', rollout: true });
    for (const bad of ['', '-1', '1.5', 'max', 'undefined']) assert.equal(parseAggregation(bad), null, bad);
  });
});
