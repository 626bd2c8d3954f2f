// Token -> source range alignment (src/engine/offsets/) on the real tokenizers in ../shared:
// WordPiece (bert-base-uncased, tiny-bert), byte-level BPE (tiny-gpt2) and SentencePiece BPE with
// byte fallback (stories260K). Property tests over the tricky-strings corpus plus exact examples.
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AutoTokenizer, PreTrainedTokenizer, env } from '@huggingface/transformers';
import { alignTokens, alignTokensDetailed, tokenizeWithOffsets } from '../../src/engine/offsets';
import type { TokenSpan } from '../../src/engine/types';
import { BERT_TOKENIZER, STORIES, TINY_BERT, TINY_GPT2 } from './helpers/shared';
import { TRICKY_STRINGS } from './corpus/tricky-strings';

env.allowRemoteModels = false;
env.allowLocalModels = true;
env.localModelPath = '';

type Kind = 'wordpiece' | 'bytelevel' | 'sentencepiece';
/** The parts of tokenizer.json the variants edit. */
interface TokenizerJson {
  normalizer: unknown;
  pre_tokenizer: Record<string, unknown>;
  [key: string]: unknown;
}
interface Subject {
  name: string;
  dir: string;
  kind: Kind;
  /** Edits tokenizer.json to make a variant of the real tokenizer (other pre-tokenizers / normalizers). */
  edit?: (json: TokenizerJson) => void;
  tok?: PreTrainedTokenizer;
}

const SUBJECTS: Subject[] = [
  { name: 'bert-base-uncased', dir: BERT_TOKENIZER, kind: 'wordpiece' },
  { name: 'tiny-bert', dir: TINY_BERT, kind: 'wordpiece' },
  { name: 'tiny-gpt2', dir: TINY_GPT2, kind: 'bytelevel' },
  { name: 'stories260K', dir: STORIES, kind: 'sentencepiece' },
  // Variants built from the real files, for configurations other models use.
  {
    name: 'variant: stories260K vocab, WhitespaceSplit + Metaspace pre-tokenizer, no normalizer',
    dir: STORIES,
    kind: 'sentencepiece',
    edit: (j) => {
      j.normalizer = null;
      j.pre_tokenizer = { type: 'Sequence', pretokenizers: [{ type: 'WhitespaceSplit' }, { type: 'Metaspace', replacement: '\u2581', prepend_scheme: 'always', split: true }] };
    },
  },
  {
    name: 'variant: tiny-gpt2 with add_prefix_space',
    dir: TINY_GPT2,
    kind: 'bytelevel',
    edit: (j) => {
      j.pre_tokenizer.add_prefix_space = true;
    },
  },
  {
    name: 'variant: bert-base-uncased vocab, NFKC + Lowercase, Whitespace pre-tokenizer',
    dir: BERT_TOKENIZER,
    kind: 'wordpiece',
    edit: (j) => {
      j.normalizer = { type: 'Sequence', normalizers: [{ type: 'NFKC' }, { type: 'Lowercase' }] };
      j.pre_tokenizer = { type: 'Whitespace' };
    },
  },
];

before(async () => {
  for (const s of SUBJECTS) {
    if (s.edit) {
      const json = JSON.parse(fs.readFileSync(path.join(s.dir, 'tokenizer.json'), 'utf8'));
      const config = JSON.parse(fs.readFileSync(path.join(s.dir, 'tokenizer_config.json'), 'utf8'));
      s.edit(json);
      s.tok = new PreTrainedTokenizer(json, config);
    } else {
      s.tok = await AutoTokenizer.from_pretrained(s.dir, { local_files_only: true });
    }
  }
});

const subject = (name: string): PreTrainedTokenizer => SUBJECTS.find((s) => s.name === name)!.tok!;

// --- Independent re-implementation of "what a token stands for", for the checks -------------

const BYTE_DECODER = (() => {
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const cs = bs.slice();
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n++);
    }
  }
  return new Map(cs.map((c, i) => [String.fromCharCode(c), bs[i]]));
})();

const enc = new TextEncoder();
const dec = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });

/** The bytes of the (normalized) text a non-special, non-[UNK] token stands for. */
function surfaceBytes(kind: Kind, token: string): Uint8Array {
  if (kind === 'wordpiece') return enc.encode(token.startsWith('##') && token.length > 2 ? token.slice(2) : token);
  if (kind === 'bytelevel') return Uint8Array.from([...token].map((c) => BYTE_DECODER.get(c) ?? 0));
  const m = /^<0x([0-9A-F]{2})>$/.exec(token);
  if (m) return Uint8Array.of(parseInt(m[1], 16));
  return enc.encode(token.replace(/\u2581/g, ' '));
}

function wellFormed(s: string): string {
  return s.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd');
}

/** Source text as the tokenizer normalizes it (its own normalizer), in surface terms. */
function normalized(tok: PreTrainedTokenizer, kind: Kind, s: string): string {
  const n = (tok as unknown as { _tokenizer: { normalizer: ((x: string) => string) | null } })._tokenizer.normalizer;
  let out = n ? n(s) : s;
  if (kind === 'sentencepiece') out = out.replace(/\u2581/g, ' ');
  return wellFormed(out);
}

const trimWs = (s: string) => s.replace(/^\s+|\s+$/gu, '');
/** Whitespace, for this tokenizer: a literal "▁" is a space to SentencePiece. */
const isSpace = (kind: Kind, ch: string) => /^\s$/u.test(ch) || (kind === 'sentencepiece' && ch === '\u2581');

/** Whether a stretch of source text holds only what the tokenizer ignores (whitespace, dropped characters). */
function ignorable(tok: PreTrainedTokenizer, kind: Kind, s: string): boolean {
  for (const ch of s) {
    if (isSpace(kind, ch)) continue;
    if (kind === 'wordpiece' && trimWs(normalized(tok, kind, ch)) === '') continue;
    return false;
  }
  return true;
}

function isHigh(c: number) {
  return c >= 0xd800 && c <= 0xdbff;
}
function isLow(c: number) {
  return c >= 0xdc00 && c <= 0xdfff;
}

const fmt = (s: string) => JSON.stringify(s.length > 80 ? s.slice(0, 80) + '…' : s);

/** All five properties for one text; returns problems found (empty when all hold). */
function checkProperties(subj: Subject, text: string): string[] {
  const tok = subj.tok!;
  const problems: string[] = [];
  const expected = tok.encode(text);
  const { spans, fallbacks } = alignTokensDetailed(tok, text, expected);
  const viaApi = tokenizeWithOffsets(tok, text);
  // 1. ids are exactly what the tokenizer gives.
  if (JSON.stringify(viaApi.map((t) => t.id)) !== JSON.stringify(expected)) problems.push('ids differ from tokenizer.encode');
  if (JSON.stringify(viaApi) !== JSON.stringify(spans)) problems.push('tokenizeWithOffsets != alignTokens');
  if (fallbacks !== 0) problems.push(`aligner needed ${fallbacks} resync(s)`);

  const real = spans.filter((t) => !t.special);
  for (const t of spans) {
    if (t.special && (t.start !== -1 || t.end !== -1)) problems.push(`special ${t.text} has a range`);
    if (!t.special && !(t.start >= 0 && t.start <= t.end && t.end <= text.length)) problems.push(`${t.text}: range ${t.start}-${t.end} out of bounds`);
  }
  // 5. surrogate pairs never split.
  for (const t of real) {
    for (const at of [t.start, t.end]) {
      if (at > 0 && at < text.length && isHigh(text.charCodeAt(at - 1)) && isLow(text.charCodeAt(at))) problems.push(`${t.text}: splits a surrogate pair at ${at}`);
    }
  }
  // 2. ordered, no overlap except groups sharing characters; 4. content per token / group.
  const groups: TokenSpan[][] = [];
  for (const t of real) {
    const g = groups[groups.length - 1];
    const gEnd = g ? Math.max(...g.map((x) => x.end)) : -1;
    if (g && t.start < gEnd) g.push(t);
    else {
      if (g && t.start < g[g.length - 1].start) problems.push(`${t.text}: out of order`);
      groups.push([t]);
    }
  }
  let cursor = 0;
  for (const g of groups) {
    const gs = Math.min(...g.map((x) => x.start));
    const ge = Math.max(...g.map((x) => x.end));
    if (g.length > 1) {
      for (let i = 1; i < g.length; i++) if (g[i].start < g[i - 1].start) problems.push(`${g[i].text}: out of order in a group`);
    }
    // 3. gaps hold only ignorable text.
    if (gs < cursor) problems.push(`${g[0].text}: overlaps the previous token`);
    else if (!ignorable(tok, subj.kind, text.slice(cursor, gs))) problems.push(`gap ${fmt(text.slice(cursor, gs))} before ${g[0].text} is not ignorable`);
    cursor = Math.max(cursor, ge);

    const rangeText = text.slice(gs, ge);
    const unk = (x: TokenSpan) => x.id === tok.unk_token_id && subj.kind === 'wordpiece';
    const literal = g.length === 1 && tok.all_special_tokens.includes(g[0].text) && (!unk(g[0]) || rangeText === g[0].text);
    if (literal) {
      if (rangeText !== g[0].text) problems.push(`literal special ${g[0].text} covers ${fmt(rangeText)}`);
      continue;
    }
    if (g.some(unk)) {
      // [UNK] covers a whole word (possibly sharing one character with its neighbours).
      if (ge <= gs) problems.push('[UNK] range is empty');
      // (A group can hold a [UNK] and a known token sharing one unit, e.g. "中" + U+20E3.)
      if (g.length === 1 && /\s/u.test(trimWs(normalized(tok, subj.kind, rangeText)))) problems.push(`[UNK] spans whitespace: ${fmt(rangeText)}`);
      continue;
    }
    const bytes: number[] = [];
    for (const x of g) bytes.push(...surfaceBytes(subj.kind, x.text));
    const surface = dec.decode(Uint8Array.from(bytes));
    // A WordPiece word may itself start with "##" (Whitespace pre-tokenizer): then it is not a prefix.
    const literalHashes = g.map((x) => x.text).join('');
    if (ge === gs) {
      // Only synthetic space markers (a prepended "▁" or "Ġ") may cover nothing.
      if (!/^ +$/.test(surface)) problems.push(`${g.map((x) => x.text).join('+')}: empty range`);
      continue;
    }
    // Final sigma depends on context the range alone does not have: compare sigma-insensitively.
    const want = trimWs(normalized(tok, subj.kind, rangeText)).replace(/\u03c2/g, '\u03c3');
    const got = trimWs(surface).replace(/\u03c2/g, '\u03c3');
    if (want !== got && !(subj.kind === 'wordpiece' && want === trimWs(literalHashes).replace(/\u03c2/g, '\u03c3'))) problems.push(`${g.map((x) => x.text).join('+')} @${gs}-${ge}: text ${fmt(rangeText)} normalizes to ${fmt(want)}, token says ${fmt(got)}`);
    if (got === '' && ![...rangeText].every((ch) => isSpace(subj.kind, ch))) problems.push(`whitespace token covers ${fmt(rangeText)}`);
  }
  if (!ignorable(tok, subj.kind, text.slice(cursor))) problems.push(`tail ${fmt(text.slice(cursor))} is not ignorable`);
  return problems;
}

describe('offsets: corpus', () => {
  test('the corpus has at least 200 strings', () => {
    assert.ok(TRICKY_STRINGS.length >= 200, `only ${TRICKY_STRINGS.length}`);
  });

  for (const subj of SUBJECTS) {
    test(`properties hold on every corpus string: ${subj.name}`, () => {
      const failures: string[] = [];
      for (const text of TRICKY_STRINGS) {
        const problems = checkProperties(subj, text);
        if (problems.length) failures.push(`${fmt(text)}:\n    ${problems.slice(0, 5).join('\n    ')}`);
      }
      assert.equal(failures.length, 0, `${failures.length} strings failed:\n${failures.slice(0, 15).join('\n')}`);
    });
  }
});

/** Random strings from a pool of awkward pieces (seeded: the same strings every run). */
function fuzzStrings(count: number, seed: number): string[] {
  const pool = [
    'a', 'Z', 'é', 'e\u0301', '\u0301', 'ß', 'İ', 'Σ', 'ς', 'ﬁ', '½', '１', 'Ａ', '中', '𠀋', '한', '\u1100', '\u1161', 'あ', 'ア', 'ｱ',
    'ا', 'ِ', 'ש', 'ּ', 'न', '्', 'ก', '่', '👋', '🏽', '\u200d', '🇯', '🇵', '\ufe0f', '\u20e3', '\u200b', '\ufeff', '\u00a0',
    '\u3000', '\u2028', '\u00ad', ' ', '  ', '\t', '\n', '\r', '\r\n', '\u0000', '\u0007', '\u001b', '\u007f', '\u0085',
    '\ud800', '\udc00', '\ue000', '\ufffd', '.', ',', '!', '?', "'", '"', '#', '##', '<', '>', '/', '\\', '_', '-', '=', '|',
    '0', '42', '3.14', '[SEP]', '[UNK]', '<s>', '</s>', '<|endoftext|>', '▁', 'Ġ', 'the', 'The', ' the', 'ing', 'hello', 'world',
  ];
  let x = seed >>> 0;
  const rnd = () => ((x = (Math.imul(x, 1664525) + 1013904223) >>> 0), x >>> 8);
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    let str = '';
    const n = 1 + (rnd() % 12);
    for (let j = 0; j < n; j++) str += pool[rnd() % pool.length];
    out.push(str);
  }
  return out;
}

describe('offsets: seeded fuzz', () => {
  const count = Number(process.env.OFFSETS_FUZZ ?? 150);
  for (const subj of SUBJECTS) {
    test(`properties hold on ${count} random strings: ${subj.name}`, () => {
      const failures: string[] = [];
      for (const text of fuzzStrings(count, Number(process.env.OFFSETS_FUZZ_SEED ?? 12345))) {
        const problems = checkProperties(subj, text);
        if (problems.length) failures.push(`${fmt(text)}:\n    ${problems.slice(0, 5).join('\n    ')}`);
      }
      assert.equal(failures.length, 0, `${failures.length} strings failed:\n${failures.slice(0, 15).join('\n')}`);
    });
  }
});

/** [token text, source text] for every token; special ones as [text, null]. */
function view(tok: PreTrainedTokenizer, text: string): Array<[string, string | null]> {
  return tokenizeWithOffsets(tok, text).map((t) => [t.text, t.special ? null : text.slice(t.start, t.end)]);
}

function ranges(tok: PreTrainedTokenizer, text: string): Array<[string, number, number]> {
  return tokenizeWithOffsets(tok, text).map((t) => [t.text, t.start, t.end]);
}

describe('offsets: WordPiece (bert-base-uncased)', () => {
  test('Hello, world!', () => {
    const spans = tokenizeWithOffsets(subject('bert-base-uncased'), 'Hello, world!');
    assert.deepEqual(spans, [
      { text: '[CLS]', id: 101, start: -1, end: -1, special: true },
      { text: 'hello', id: 7592, start: 0, end: 5, special: false },
      { text: ',', id: 1010, start: 5, end: 6, special: false },
      { text: 'world', id: 2088, start: 7, end: 12, special: false },
      { text: '!', id: 999, start: 12, end: 13, special: false },
      { text: '[SEP]', id: 102, start: -1, end: -1, special: true },
    ]);
  });

  test('accents are stripped, ranges cover the accented source', () => {
    assert.deepEqual(view(subject('bert-base-uncased'), 'naïve café'), [
      ['[CLS]', null],
      ['naive', 'naïve'],
      ['cafe', 'café'],
      ['[SEP]', null],
    ]);
    // Decomposed accents: the combining mark belongs to its letter.
    assert.deepEqual(ranges(subject('bert-base-uncased'), 'cafe\u0301!'), [
      ['[CLS]', -1, -1],
      ['cafe', 0, 5],
      ['!', 5, 6],
      ['[SEP]', -1, -1],
    ]);
  });

  test('Ünïcödé', () => {
    const spans = tokenizeWithOffsets(subject('bert-base-uncased'), 'Ünïcödé').filter((t) => !t.special);
    assert.equal(spans.map((t) => t.text.replace(/^##/, '')).join(''), 'unicode');
    assert.equal(spans[0].start, 0);
    assert.equal(spans[spans.length - 1].end, 7);
  });

  test('CRLF and tabs are skipped', () => {
    assert.deepEqual(ranges(subject('bert-base-uncased'), 'a\r\nb\tc'), [
      ['[CLS]', -1, -1],
      ['a', 0, 1],
      ['b', 3, 4],
      ['c', 5, 6],
      ['[SEP]', -1, -1],
    ]);
  });

  test('sub-words, Chinese characters, [UNK] over a whole word', () => {
    const tok = subject('bert-base-uncased');
    assert.deepEqual(view(tok, 'Unbelievably 中文 👋🏽x'), [
      ['[CLS]', null],
      ['un', 'Un'],
      ['##bel', 'bel'],
      ['##ie', 'ie'],
      ['##va', 'va'],
      ['##bly', 'bly'],
      ['中', '中'],
      ['文', '文'],
      ['[UNK]', '👋🏽x'],
      ['[SEP]', null],
    ]);
    // Over max_input_chars_per_word (100): one [UNK] for the whole word.
    const long = 'a'.repeat(300);
    assert.deepEqual(view(tok, `x ${long} y`), [
      ['[CLS]', null],
      ['x', 'x'],
      ['[UNK]', long],
      ['y', 'y'],
      ['[SEP]', null],
    ]);
  });

  test('control and zero-width characters are dropped, final sigma lowercases in context', () => {
    const tok = subject('bert-base-uncased');
    assert.deepEqual(view(tok, 'a\u200bb\u0007c \ufeffd'), [
      ['[CLS]', null],
      ['abc', 'a\u200bb\u0007c'],
      ['d', 'd'],
      ['[SEP]', null],
    ]);
    const spans = tokenizeWithOffsets(tok, 'ΣΟΦΟΣ').filter((t) => !t.special);
    assert.equal(spans[spans.length - 1].end, 5);
    assert.ok(spans.some((t) => t.text.includes('\u03c2')), 'final sigma');
  });

  test('a literal [SEP] in the text keeps its range; inserted ones do not', () => {
    assert.deepEqual(ranges(subject('bert-base-uncased'), 'a [SEP] b'), [
      ['[CLS]', -1, -1],
      ['a', 0, 1],
      ['[SEP]', 2, 7],
      ['b', 8, 9],
      ['[SEP]', -1, -1],
    ]);
    const spans = tokenizeWithOffsets(subject('bert-base-uncased'), '[CLS]');
    assert.deepEqual(
      spans.map((t) => [t.text, t.start, t.special]),
      [
        ['[CLS]', -1, true],
        ['[CLS]', 0, false],
        ['[SEP]', -1, true],
      ],
    );
  });

  test('without special tokens; empty and whitespace-only input', () => {
    const tok = subject('bert-base-uncased');
    assert.deepEqual(
      tokenizeWithOffsets(tok, 'Hi', { addSpecialTokens: false }).map((t) => [t.text, t.start, t.end]),
      [['hi', 0, 2]],
    );
    assert.deepEqual(ranges(tok, ''), [
      ['[CLS]', -1, -1],
      ['[SEP]', -1, -1],
    ]);
    assert.deepEqual(ranges(tok, ' \r\n\t '), [
      ['[CLS]', -1, -1],
      ['[SEP]', -1, -1],
    ]);
  });
});

describe('offsets: byte-level BPE (tiny-gpt2)', () => {
  test('leading spaces are trimmed from ranges', () => {
    assert.deepEqual(view(subject('tiny-gpt2'), 'Hello, world!').slice(-2), [
      ['Ġworld', 'world'],
      ['!', '!'],
    ]);
  });

  test('👋🏽: byte tokens of one character share its range', () => {
    const tok = subject('tiny-gpt2');
    const spans = tokenizeWithOffsets(tok, '👋🏽');
    assert.deepEqual(
      spans.map((t) => [t.start, t.end]),
      [
        [0, 2],
        [0, 2],
        [0, 2],
        [0, 2],
        [2, 4],
        [2, 4],
        [2, 4],
        [2, 4],
      ],
    );
    assert.ok(spans.every((t) => !t.special));
  });

  test('CRLF, tabs and runs of spaces are tokens of their own', () => {
    assert.deepEqual(view(subject('tiny-gpt2'), 'a\r\nb\tc  d'), [
      ['a', 'a'],
      ['č', '\r'],
      ['Ċ', '\n'],
      ['b', 'b'],
      ['ĉ', '\t'],
      ['c', 'c'],
      ['Ġ', ' '],
      ['Ġd', 'd'],
    ]);
  });

  test('<|endoftext|> written in the text', () => {
    assert.deepEqual(ranges(subject('tiny-gpt2'), 'x<|endoftext|>y'), [
      ['x', 0, 1],
      ['<|endoftext|>', 1, 14],
      ['y', 14, 15],
    ]);
  });

  test('a lone surrogate is one unit (encoded as U+FFFD)', () => {
    const spans = tokenizeWithOffsets(subject('tiny-gpt2'), 'a\ud800b');
    assert.deepEqual(spans[0], { text: 'a', id: spans[0].id, start: 0, end: 1, special: false });
    assert.ok(spans.slice(1, -1).every((t) => t.start === 1 && t.end === 2));
    assert.deepEqual([spans[spans.length - 1].start, spans[spans.length - 1].end], [2, 3]);
  });
});

describe('offsets: SentencePiece BPE with byte fallback (stories260K)', () => {
  test('Once upon a time, there was a little girl named Lily.', () => {
    const text = 'Once upon a time, there was a little girl named Lily.';
    const spans = tokenizeWithOffsets(subject('stories260K'), text);
    assert.deepEqual(spans[0], { text: '<s>', id: 1, start: -1, end: -1, special: true });
    const words = spans.slice(1).map((t) => [t.text, text.slice(t.start, t.end)]);
    for (const [tokText, src] of words) assert.equal(src, tokText.replace(/^\u2581/, ''), `${tokText} -> ${src}`);
    assert.equal(spans[1].start, 0);
    assert.equal(spans[spans.length - 1].end, text.length);
    assert.equal(spans.map((t) => t.text).join(''), '<s>' + '\u2581' + text.replace(/ /g, '\u2581'));
  });

  test('byte-fallback pieces of one character share its range', () => {
    const text = 'a 😀!';
    assert.deepEqual(ranges(subject('stories260K'), text), [
      ['<s>', -1, -1],
      ['\u2581a', 0, 1],
      ['\u2581', 1, 2],
      ['<0xF0>', 2, 4],
      ['<0x9F>', 2, 4],
      ['<0x98>', 2, 4],
      ['<0x80>', 2, 4],
      ['!', 4, 5],
    ]);
  });

  test('CRLF become byte tokens; the prepended ▁ covers nothing', () => {
    assert.deepEqual(view(subject('stories260K'), '\r\nhi'), [
      ['<s>', null],
      ['\u2581', ''],
      ['<0x0D>', '\r'],
      ['<0x0A>', '\n'],
      ['h', 'h'],
      ['i', 'i'],
    ]);
  });

  test('a literal <s> after the BOS', () => {
    const spans = tokenizeWithOffsets(subject('stories260K'), '<s>x');
    assert.deepEqual(
      spans.map((t) => [t.text, t.start, t.end, t.special]),
      [
        ['<s>', -1, -1, true],
        ['<s>', 0, 3, false],
        // The section after a literal <s> gets its own prepended ▁ (a synthetic piece: empty range).
        ['\u2581', 3, 3, false],
        ['x', 3, 4, false],
      ],
    );
  });
});

describe('offsets: alignTokens with caller ids', () => {
  test('a truncated id list (the engine keeps [CLS] … [SEP])', () => {
    const tok = subject('bert-base-uncased');
    const text = 'one two three four';
    const full = tok.encode(text);
    const cut = [...full.slice(0, 3), full[full.length - 1]];
    assert.deepEqual(
      alignTokens(tok, text, cut).map((t) => [t.text, t.start, t.end, t.special]),
      [
        ['[CLS]', -1, -1, true],
        ['one', 0, 3, false],
        ['two', 4, 7, false],
        ['[SEP]', -1, -1, true],
      ],
    );
  });

  test('padding ids are special', () => {
    const tok = subject('bert-base-uncased');
    const ids = [...tok.encode('hi'), 0, 0];
    const spans = alignTokens(tok, 'hi', ids);
    assert.deepEqual(
      spans.map((t) => t.special),
      [true, false, true, true, true],
    );
  });
});

describe('offsets: robustness', () => {
  test('ids of another text still give ordered, in-bounds ranges', () => {
    for (const subj of SUBJECTS) {
      const tok = subj.tok!;
      const text = 'Hello there, general Kenobi! 👋🏽 naïve';
      for (const other of ['Hello world, general Grievous! 🤖 naive', 'completely different', '']) {
        const spans = alignTokens(tok, text, tok.encode(other));
        let last = 0;
        for (const t of spans) {
          if (t.special) continue;
          assert.ok(t.start >= 0 && t.start <= t.end && t.end <= text.length, `${subj.name}: ${t.text} ${t.start}-${t.end}`);
          assert.ok(t.start >= last || t.start < t.end, `${subj.name}: order`);
          last = Math.max(last, t.start);
        }
      }
    }
  });

  test('a tokenizer object without the transformers.js internals is refused', () => {
    assert.throws(() => alignTokens({} as PreTrainedTokenizer, 'x', [1]), TypeError);
  });
});

describe('offsets: speed', () => {
  for (const name of ['bert-base-uncased', 'tiny-gpt2', 'stories260K']) {
    test(`aligning ~512 tokens takes well under 10 ms: ${name}`, () => {
      const tok = subject(name);
      const base = TRICKY_STRINGS.slice(0, 40).join('\n');
      let text = base;
      while (tok.encode(text).length < 512) text += '\n' + base;
      const ids = tok.encode(text).slice(0, 512);
      for (let i = 0; i < 5; i++) alignTokens(tok, text, ids); // warm up
      const times: number[] = [];
      for (let i = 0; i < 25; i++) {
        const t0 = performance.now();
        alignTokens(tok, text, ids);
        times.push(performance.now() - t0);
      }
      times.sort((a, b) => a - b);
      // The fastest run measures the aligner; slower ones measure whatever else shares the CPU.
      const best = times[0];
      const median = times[times.length >> 1];
      if (process.env.OFFSETS_BENCH) console.log(`${name}: ${ids.length} tokens, ${text.length} chars, best ${best.toFixed(3)} ms, median ${median.toFixed(3)} ms`);
      assert.ok(best < 10, `best ${best.toFixed(2)} ms for ${ids.length} tokens`);
    });
  }

  test('a 50k-character input stays linear', () => {
    const tok = subject('tiny-gpt2');
    const text = TRICKY_STRINGS.join('\n').repeat(3).slice(0, 50_000);
    const ids = tok.encode(text);
    const t0 = performance.now();
    const spans = alignTokens(tok, text, ids);
    const ms = performance.now() - t0;
    assert.equal(spans.length, ids.length);
    assert.ok(ms < 500, `${ms.toFixed(1)} ms for ${ids.length} tokens`);
  });
});
