// Exact token -> source ranges for transformers.js tokenizers (which report no character offsets).
//
// How it works (details in stream.ts, profile.ts and align.ts beside this file):
//   1. The text is cut where the tokenizer itself cuts it (added tokens written literally, e.g.
//      "[CLS]" or "<|endoftext|>") and each piece is normalized unit by unit with the tokenizer's own
//      normalizer (a unit is a code point, plus its combining marks when the normalizer touches
//      marks), giving the normalized text as UTF-8 bytes with a map byte -> source UTF-16 range.
//   2. Every token id is turned into the bytes it stands for in that normalized text ("##" dropped,
//      GPT-2 byte characters back to bytes, "<0xNN>" to the byte, "▁" to a space).
//   3. One greedy pass walks the tokens through the bytes, skipping whitespace the tokenizer drops;
//      a token's range is the union of the source units its bytes came from, trimmed of leading /
//      trailing whitespace. Tokens that are bytes of one character share that character's range.
//      [UNK] covers the word (WordPiece) or character(s) (BPE) it replaced.
//   4. Special tokens the post-processor inserted ([CLS], [SEP], <s>) get -1/-1 and special: true.
//      A special token written literally in the text gets that text's range and special: false,
//      so `special` always means "not in the text".
//
// No `vscode` import here: this runs in the engine worker and in the CLI.

import type { PreTrainedTokenizer } from '@huggingface/transformers';
import type { TokenSpan } from '../types';
import { alignWithProfile, AlignResult } from './align';
import { getProfile } from './profile';

export type { AlignResult } from './align';

/** A transformers.js tokenizer (what `AutoTokenizer.from_pretrained` returns). */
export type OffsetTokenizer = PreTrainedTokenizer;

export interface TokenizeOptions {
  /** Add the model's special tokens ([CLS]/[SEP], BOS, ...) as `tokenizer.encode` does. Default true. */
  addSpecialTokens?: boolean;
}

/**
 * Encodes `text` with the tokenizer itself (ids exactly as `tokenizer.encode(text)` gives them) and
 * returns one TokenSpan per id, with UTF-16 source ranges.
 */
export function tokenizeWithOffsets(tokenizer: OffsetTokenizer, text: string, options: TokenizeOptions = {}): TokenSpan[] {
  const ids = tokenizer.encode(text, { add_special_tokens: options.addSpecialTokens ?? true });
  return alignTokens(tokenizer, text, ids);
}

/** Aligns ids that `tokenizer` produced for `text` (special tokens included or not, possibly cut short). */
export function alignTokens(tokenizer: OffsetTokenizer, text: string, ids: ArrayLike<number>): TokenSpan[] {
  return alignTokensDetailed(tokenizer, text, ids).spans;
}

/** alignTokens, plus how many times the aligner had to resynchronize (0 for a fully modelled tokenizer). */
export function alignTokensDetailed(tokenizer: OffsetTokenizer, text: string, ids: ArrayLike<number>): AlignResult {
  return alignWithProfile(getProfile(tokenizer), text, ids);
}
