// The weights of the token the user points at, shared by the head view's tinted column and the
// side list of top attended words.

import type { Aggregation } from '../src/protocol/attention';
import type { TokenRef } from './context';

/**
 * `a`'s row (as a query) or column (as a key) of each aggregate's matrix, averaged over those
 * that have data, written into `out` (length T); null when none has.
 */
export function tokenWeights(
  matrix: (layer: number, agg: Aggregation) => Float32Array | null,
  layer: number,
  aggs: readonly Aggregation[],
  a: TokenRef,
  T: number,
  out: Float32Array,
): Float32Array | null {
  const w = out;
  w.fill(0);
  let n = 0;
  for (const agg of aggs) {
    const m = matrix(layer, agg);
    if (!m) continue;
    n++;
    if (a.side === 'q') for (let j = 0, b = a.index * T; j < T; j++) w[j] += m[b + j];
    else for (let i = 0; i < T; i++) w[i] += m[i * T + a.index];
  }
  if (n === 0) return null;
  if (n > 1) for (let j = 0; j < T; j++) w[j] /= n;
  return w;
}
