// "What does token q attend to?" for one head or the mean of heads, as words: the computation
// behind the panel's hover box, the editor decorations and the editor hover.
import { decodeRow, keepMask, meanRow, renormalizeRow, type LayerTensor } from './tensor';
import { topAttended, type AttendedWord, type TokenLike, type WordGrouping } from './words';

export function attendedWords(
  layer: LayerTensor,
  head: number | 'mean',
  q: number,
  tokens: readonly TokenLike[],
  grouping: WordGrouping,
  k: number,
  hideSpecial: boolean,
): AttendedWord[] {
  const row = head === 'mean' ? meanRow(layer, null, q) : decodeRow(layer, head, q);
  if (hideSpecial) renormalizeRow(row, keepMask(tokens, true));
  return topAttended(row, tokens, grouping, k);
}

/** Index of the first token whose range holds `offset`, or -1. (A linear scan: T <= a few thousand, called once per hover.) */
export function tokenAt(tokens: readonly TokenLike[], offset: number): number {
  return tokens.findIndex((t) => !t.special && t.start <= offset && offset < t.end);
}
