// Comparing two runs (src/analysis/compare.ts): token alignment by source ranges (identical runs,
// insertions, deletions, an edit in the middle, multi-token words, special tokens), the difference
// B − A with gaps, the per-token change scores, and the real stories260K engine: a word changed in
// a sentence gives exactly zero before the edit (a causal model) and the sign and value an
// independent reading of the two engine results gives after it.
import { test, describe, before } from 'node:test';
import assert from 'node:assert/strict';
import { alignTokens, compareRefusal, differenceMatrix, mostChanged, RowChanges, type CompareSide } from '../../src/analysis/compare';
import { layerTensor } from '../../src/analysis/tensor';
import type { WireModel, WireToken } from '../../src/protocol/attention';
import { AttentionEngine } from '../../src/engine/engine';
import type { AttentionResult } from '../../src/engine/types';
import { runStartMessage } from '../../src/run/messages';
import { tempDir, STORIES } from './helpers/shared';
import { parseHostMessage, parseWebviewMessage } from '../../src/protocol/validate';
import { Outbox } from '../../src/run/outbox';
import type { HostToWebview } from '../../src/protocol/webview';

/** A WordPiece-like tokenisation with real offsets: words cut in pieces of at most 4 characters, punctuation alone, [CLS] … [SEP]. */
function side(text: string, offset = 0, special = true): CompareSide {
  const tokens: WireToken[] = [];
  if (special) tokens.push({ text: '[CLS]', start: -1, end: -1, special: true });
  for (const m of text.matchAll(/[\p{L}\p{N}]+|[^\s\p{L}\p{N}]/gu)) {
    const s = m.index! + offset;
    for (let i = 0; i < m[0].length; i += 4) {
      const piece = m[0].slice(i, i + 4).toLowerCase();
      tokens.push({ text: i ? `##${piece}` : piece, start: s + i, end: s + Math.min(m[0].length, i + 4), special: false });
    }
  }
  if (special) tokens.push({ text: '[SEP]', start: -1, end: -1, special: true });
  return { tokens, sourceText: { text, offset } };
}

/** The axis as readable pairs: "a>b" for a match, "a>-" deleted, "->b" inserted, with token texts. */
function pairs(a: CompareSide, b: CompareSide): string[] {
  const { axis } = alignTokens(a, b);
  return Array.from(axis.a, (i, n) => {
    const j = axis.b[n];
    return i >= 0 && j >= 0 ? a.tokens[i].text : i >= 0 ? `-${a.tokens[i].text}` : `+${b.tokens[j].text}`;
  });
}

/** A T × T matrix whose cell (q, k) is f(q, k). */
function matrix(T: number, f: (q: number, k: number) => number): Float32Array {
  const m = new Float32Array(T * T);
  for (let q = 0; q < T; q++) for (let k = 0; k < T; k++) m[q * T + k] = f(q, k);
  return m;
}

describe('alignment by source ranges', () => {
  test('identical runs: every token matches itself, in order', () => {
    const a = side('The cat sat on the mat.');
    const al = alignTokens(a, side('The cat sat on the mat.'));
    assert.equal(al.matched, a.tokens.length);
    assert.deepEqual([...al.bToA], a.tokens.map((_, i) => i));
    assert.deepEqual([...al.axis.a], [...al.axis.b]);
  });

  test('the same text elsewhere in the document (another selection) matches too: offsets count from the analysed text', () => {
    const al = alignTokens(side('The cat sat.', 0), side('The cat sat.', 500));
    assert.equal(al.matched, 6);
  });

  test('an insertion: the new token is a gap, the tokens after it match shifted', () => {
    assert.deepEqual(pairs(side('the cat sat'), side('the big cat sat')), ['[CLS]', 'the', '+big', 'cat', 'sat', '[SEP]']);
  });

  test('a deletion: the removed token is a gap, the tokens after it match shifted', () => {
    assert.deepEqual(pairs(side('the big cat sat'), side('the cat sat')), ['[CLS]', 'the', '-big', 'cat', 'sat', '[SEP]']);
  });

  test('an edit in the middle: deleted tokens, then inserted ones, between the matched head and tail', () => {
    assert.deepEqual(pairs(side('once there was a girl in the park.'), side('once there was a small dog in the park.')), [
      '[CLS]', 'once', 'ther', '##e', 'was', 'a', '-girl', '+smal', '+##l', '+dog', 'in', 'the', 'park', '.', '[SEP]',
    ]);
  });

  test('multi-token words: the unchanged pieces of an edited word still match, the changed one is a gap', () => {
    assert.deepEqual(pairs(side('Unbelievably cats'), side('Unbelievable cats')), ['[CLS]', 'unbe', '##liev', '-##ably', '+##able', 'cats', '[SEP]']);
  });

  test('the same token text at the same offset is not enough: the source text must agree', () => {
    const a: CompareSide = { tokens: [{ text: '[UNK]', start: 0, end: 1, special: false }], sourceText: { text: 'é', offset: 0 } };
    const b: CompareSide = { tokens: [{ text: '[UNK]', start: 0, end: 1, special: false }], sourceText: { text: 'ü', offset: 0 } };
    assert.equal(alignTokens(a, b).matched, 0);
  });

  test('special tokens match by position (BOS ↔ BOS, SEP ↔ SEP), never a special against a word', () => {
    const al = alignTokens(side('a b'), side('x y'));
    assert.deepEqual(pairs(side('a b'), side('x y')), ['[CLS]', '-a', '-b', '+x', '+y', '[SEP]']);
    assert.equal(al.matched, 2);
    const noSpecials = side('a b', 0, false);
    assert.deepEqual(pairs(noSpecials, side('a b')), ['+[CLS]', 'a', 'b', '+[SEP]']);
  });

  test('two separate edits: the unchanged words between them still match', () => {
    assert.deepEqual(pairs(side('the cat sat on the mat'), side('a cat sat on the rug')), ['[CLS]', '-the', '+a', 'cat', 'sat', 'on', 'the', '-mat', '+rug', '[SEP]']);
  });

  test('repeated tokens: matches never overlap, the extra one is the gap', () => {
    const al = alignTokens(side('a a a'), side('a a a a'));
    assert.equal(al.matched, 5);
    assert.equal([...al.bToA].filter((i) => i < 0).length, 1);
    assert.equal(new Set([...al.bToA].filter((i) => i >= 0)).size, 5, 'no token of A used twice');
  });

  test('an edited region too long to diff is all gaps (no token is guessed)', () => {
    const words = Array.from({ length: 2100 }, (_, i) => `w${i}`).join(' ');
    const al = alignTokens(side(`start ${words} end`), side(`begin ${words} finish`));
    assert.equal(al.matched, 2, 'only [CLS] and [SEP]');
    assert.equal(alignTokens(side(`start ${words.slice(0, 6000)} end`), side(`begin ${words.slice(0, 6000)} finish`)).matched > 1000, true, 'a shorter one is diffed');
  });

  test('texts with nothing in common: only the special tokens match', () => {
    assert.equal(alignTokens(side('red green'), side('blue yellow')).matched, 2);
  });
});

describe('difference B − A', () => {
  test('identical runs: zero in every cell', () => {
    const a = side('the cat sat');
    const T = a.tokens.length;
    const m = matrix(T, (q, k) => (k <= q ? 1 / (q + 1) : 0));
    const d = differenceMatrix(m, T, m.slice(), T, alignTokens(a, side('the cat sat')).axis);
    assert.equal(d.length, T * T);
    assert.ok(d.every((v) => v === 0));
  });

  test('a known change has its sign, and gap rows and columns are NaN', () => {
    const a = side('the cat sat');
    const b = side('the big cat sat');
    const [TA, TB] = [a.tokens.length, b.tokens.length];
    // In B, "sat" attends more to "cat" than in A; everything else as in A.
    const catA = 2;
    const satA = 3;
    const A = matrix(TA, (q, k) => (q === satA && k === catA ? 0.2 : 0.1));
    const B = matrix(TB, (q, k) => (q === satA + 1 && k === catA + 1 ? 0.7 : 0.1));
    const al = alignTokens(a, b);
    const d = differenceMatrix(A, TA, B, TB, al.axis);
    const N = al.axis.a.length;
    assert.equal(N, TB);
    const at = (bq: number, bk: number) => d[al.axis.b.indexOf(bq) * N + al.axis.b.indexOf(bk)];
    assert.ok(Math.abs(at(satA + 1, catA + 1) - 0.5) < 1e-6, 'more attention: positive');
    assert.equal(at(1, 1), 0, 'unchanged cells are zero');
    const big = 2;
    for (let j = 0; j < TB; j++) {
      assert.ok(Number.isNaN(at(big, j)), `the inserted token's row is a gap (key ${j})`);
      assert.ok(Number.isNaN(at(j, big)), `the inserted token's column is a gap (query ${j})`);
    }
    const dAB = differenceMatrix(B, TB, A, TA, alignTokens(b, a).axis);
    const i = alignTokens(b, a).axis.a.indexOf(satA + 1);
    const k = alignTokens(b, a).axis.a.indexOf(catA + 1);
    assert.ok(dAB[i * N + k] < 0, 'the other way round: negative');
  });

  test('deleted tokens are axis entries of their own, with gap rows and columns', () => {
    const a = side('the big cat');
    const b = side('the cat');
    const al = alignTokens(a, b);
    const d = differenceMatrix(matrix(5, () => 0.2), 5, matrix(4, () => 0.25), 4, al.axis);
    const N = al.axis.a.length;
    const big = al.axis.a.indexOf(2);
    assert.equal(al.axis.b[big], -1);
    for (let j = 0; j < N; j++) assert.ok(Number.isNaN(d[big * N + j]) && Number.isNaN(d[j * N + big]));
    assert.ok(Math.abs(d[0] - 0.05) < 1e-6);
  });

  test('models that differ are refused with a reason', () => {
    const m: WireModel = { id: 'stories260K', architecture: 'llama', kind: 'decoder', layers: 5, heads: 8, maxLength: 512 };
    assert.equal(compareRefusal(m, { ...m }), null);
    assert.match(compareRefusal(m, { ...m, id: 'gpt2' }) ?? '', /baseline ran stories260K and this run gpt2: a difference needs the same model/);
    assert.match(compareRefusal(m, { ...m, heads: 4 }) ?? '', /5 layers × 8 heads and this run 5 × 4/);
  });
});

describe('the Compare messages', () => {
  test('validated both ways; malformed ones dropped', () => {
    assert.deepEqual(parseWebviewMessage({ type: 'compare/pin', runId: 3 }), { type: 'compare/pin', runId: 3 });
    assert.equal(parseWebviewMessage({ type: 'compare/pin', runId: -1 }), null);
    assert.deepEqual(parseWebviewMessage({ type: 'compare/clear', junk: 1 }), { type: 'compare/clear' });
    assert.deepEqual(parseHostMessage({ type: 'compare/baseline', baseline: 4 }), { type: 'compare/baseline', baseline: 4 });
    assert.deepEqual(parseHostMessage({ type: 'compare/baseline', baseline: null }), { type: 'compare/baseline', baseline: null });
    assert.equal(parseHostMessage({ type: 'compare/baseline', baseline: '4' }), null);
  });

  test('the host outbox never drops the baseline (an older run than the newest, or none) as a stale run message', () => {
    const sent: HostToWebview[] = [];
    const box = new Outbox((m) => sent.push(m));
    box.supersede(9);
    box.push({ type: 'compare/baseline', baseline: 4 });
    box.push({ type: 'compare/baseline', baseline: null });
    assert.deepEqual(sent, [{ type: 'compare/baseline', baseline: 4 }, { type: 'compare/baseline', baseline: null }]);
  });
});

describe('per-token change scores', () => {
  const toTensor = (heads: Float32Array[], T: number) => {
    const all = new Float32Array(heads.length * T * T);
    heads.forEach((h, i) => all.set(h, i * T * T));
    return layerTensor(all, 'f32', heads.length, T);
  };

  test('zero for identical runs, 2 for attention moved to a token the baseline lacked, NaN for inserted tokens', () => {
    const a = side('the cat');
    const b = side('the big cat');
    const [TA, TB] = [a.tokens.length, b.tokens.length];
    const al = alignTokens(a, b);
    const same = new RowChanges(alignTokens(a, a), TA, TA);
    const mA = matrix(TA, (q, k) => (k === 0 ? 1 : 0));
    same.add(toTensor([mA, mA], TA), toTensor([mA, mA], TA));
    assert.ok(same.scores().every((v) => v === 0));

    const changes = new RowChanges(al, TA, TB);
    // In B every query attends to "big" (index 2) only; in A to [CLS].
    changes.add(toTensor([mA], TA), toTensor([matrix(TB, (_, k) => (k === 2 ? 1 : 0))], TB));
    const s = changes.scores();
    assert.ok(Number.isNaN(s[2]), 'the inserted token has no score');
    for (const q of [0, 1, 3, 4]) assert.equal(s[q], 2, `token ${q}: all of its attention moved`);
    assert.deepEqual(mostChanged(s, 2, 0.01), [0, 1]);
    assert.deepEqual(mostChanged(new Float64Array(4), 2, 0.01), [], 'nothing changed: nothing marked');
  });
});

describe('the real engine: stories260K, a word changed', () => {
  const A_TEXT = 'Once upon a time, there was a girl. She was happy.';
  const B_TEXT = 'Once upon a time, there was a big dog. She was happy.';
  /** Where the selection sits in its document: both runs at the same place, as a live update has them. */
  const OFFSET = 12;
  let A: AttentionResult;
  let B: AttentionResult;

  before(async () => {
    const engine = new AttentionEngine({ cacheDir: tempDir(), runtime: 'cpu', offline: true });
    try {
      A = await engine.analyze(STORIES, A_TEXT);
      B = await engine.analyze(STORIES, B_TEXT);
    } finally {
      await engine.dispose();
    }
  });

  const runSide = (r: AttentionResult, text: string): CompareSide => {
    const start = runStartMessage(r, { runId: 1, text, offset: OFFSET, label: 'story.txt:1' });
    return { tokens: start.tokens, sourceText: start.sourceText ?? null };
  };
  const [L, H] = [5, 8];
  /** One head's T × T matrix straight out of the engine's [L][H][T][T] attention. */
  const head = (r: AttentionResult, l: number, h: number) => {
    const T = r.tokens.length;
    return (r.attention as Float32Array).subarray((l * H + h) * T * T, (l * H + h + 1) * T * T);
  };
  const indexOf = (r: AttentionResult, text: string, piece: string, from = 0) => r.tokens.findIndex((t, i) => i >= from && text.slice(t.start, t.end) === piece);

  test('tokens before the edit match, the changed word is a gap, the tokens after it match shifted', () => {
    const al = alignTokens(runSide(A, A_TEXT), runSide(B, B_TEXT));
    const girl = indexOf(A, A_TEXT, 'g');
    const dot = indexOf(A, A_TEXT, '.');
    assert.ok(girl > 0 && dot > girl);
    for (let i = 0; i < girl; i++) assert.equal(al.aToB[i], i, `token ${i} before the edit`);
    assert.equal(al.aToB[girl], -1, '"girl" was deleted');
    assert.equal(al.aToB[dot], indexOf(B, B_TEXT, '.'), 'the full stop after the edit');
    const she = indexOf(A, A_TEXT, 'She');
    assert.equal(al.aToB[she], indexOf(B, B_TEXT, 'She'));
    assert.equal(B.tokens.length - 1 - al.aToB[A.tokens.length - 1], 0, 'the last tokens match');
  });

  test('B − A: exactly zero before the edit (causal), and after it the sign and value read straight from the two results', () => {
    const al = alignTokens(runSide(A, A_TEXT), runSide(B, B_TEXT));
    const [TA, TB] = [A.tokens.length, B.tokens.length];
    const N = al.axis.a.length;
    const girl = indexOf(A, A_TEXT, 'g');
    let nonzero = 0;
    for (let l = 0; l < L; l++)
      for (let h = 0; h < H; h++) {
        const d = differenceMatrix(head(A, l, h), TA, head(B, l, h), TB, al.axis);
        for (let i = 0; i < girl; i++) for (let j = 0; j < girl; j++) assert.equal(d[i * N + j], 0, `layer ${l} head ${h} (${i}, ${j})`);
        // "happy" after the edit, attending to "She": independently indexed in each result.
        const qA = indexOf(A, A_TEXT, 'happy');
        const kA = indexOf(A, A_TEXT, 'She');
        const qB = indexOf(B, B_TEXT, 'happy');
        const kB = indexOf(B, B_TEXT, 'She');
        const expected = head(B, l, h)[qB * TB + kB] - head(A, l, h)[qA * TA + kA];
        const got = d[al.axis.a.indexOf(qA) * N + al.axis.a.indexOf(kA)];
        assert.equal(al.axis.b[al.axis.a.indexOf(qA)], qB);
        assert.equal(Math.sign(got), Math.sign(expected), `layer ${l} head ${h}: the sign`);
        assert.ok(Math.abs(got - expected) < 1e-7, `layer ${l} head ${h}: ${got} vs ${expected}`);
        if (expected !== 0) nonzero++;
      }
    assert.ok(nonzero > L * H / 2, 'the edit changes attention after it');
  });

  test('change scores: zero for every token before the edit, the most changed ones after it', () => {
    const al = alignTokens(runSide(A, A_TEXT), runSide(B, B_TEXT));
    const [TA, TB] = [A.tokens.length, B.tokens.length];
    const changes = new RowChanges(al, TA, TB);
    const layer = (r: AttentionResult, l: number) => layerTensor((r.attention as Float32Array).subarray(l * H * r.tokens.length ** 2, (l + 1) * H * r.tokens.length ** 2), 'f32', H, r.tokens.length);
    for (let l = 0; l < L; l++) changes.add(layer(A, l), layer(B, l));
    const s = changes.scores();
    const big = indexOf(B, B_TEXT, 'big');
    for (let q = 0; q < big; q++) assert.equal(s[q], 0, `token ${q} before the edit`);
    assert.ok(Number.isNaN(s[big]), '"big" is new');
    const top = mostChanged(s, 3, 0.01);
    assert.equal(top.length, 3);
    for (const q of top) assert.ok(q > big && s[q] > 0.01 && s[q] <= 2);
  });
});
