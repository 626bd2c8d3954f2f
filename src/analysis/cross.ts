// Cross-attention of an encoder-decoder run: per decoder layer [heads][T][S], target tokens (rows,
// queries) on source tokens (columns, keys), float32. Held by the run model on both sides: the
// panel's Alignment view, the editor's source-word hovers and highlights read it.

import type { HeadSelection } from '../protocol/attention';

export class CrossStore {
  private readonly data: (Float32Array | undefined)[];
  private readonly means: (Float32Array | undefined)[];

  constructor(
    readonly layers: number,
    readonly heads: number,
    /** Target tokens (rows). */
    readonly T: number,
    /** Source tokens (columns). */
    readonly S: number,
  ) {
    this.data = new Array(layers).fill(undefined);
    this.means = new Array(layers).fill(undefined);
  }

  /** Stores layer `l` (float32 [heads][T][S]); throws when its size is wrong. Returns true when it is new. */
  add(l: number, data: ArrayBufferLike | ArrayBufferView): boolean {
    if (!(l >= 0 && l < this.layers)) throw new Error(`cross layer ${l} out of range (the decoder has ${this.layers})`);
    if (this.data[l]) return false;
    const bytes = ArrayBuffer.isView(data) ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice() : new Uint8Array(data);
    const n = this.heads * this.T * this.S;
    if (bytes.byteLength !== n * 4) throw new Error(`cross layer ${l}: ${bytes.byteLength} bytes for ${this.heads} heads × ${this.T} × ${this.S} float32 cells`);
    this.data[l] = new Float32Array(bytes.buffer, bytes.byteOffset, n);
    return true;
  }

  has(l: number): boolean {
    return this.data[l] !== undefined;
  }

  get arrived(): number {
    return this.data.filter(Boolean).length;
  }

  /** Head `h` of layer `l` ([T][S]), or the mean of its heads; null while the layer has not arrived. */
  matrix(l: number, head: HeadSelection): Float32Array | null {
    const d = this.data[l];
    if (!d) return null;
    const n = this.T * this.S;
    if (head !== 'mean') return head >= 0 && head < this.heads ? d.subarray(head * n, (head + 1) * n) : null;
    let m = this.means[l];
    if (!m) {
      m = new Float32Array(n);
      for (let h = 0; h < this.heads; h++) for (let i = 0; i < n; i++) m[i] += d[h * n + i];
      for (let i = 0; i < n; i++) m[i] /= this.heads;
      this.means[l] = m;
    }
    return m;
  }

  /** What target token `q` attends to over the source [S]. */
  row(l: number, head: HeadSelection, q: number): Float32Array | null {
    const m = this.matrix(l, head);
    return m && q >= 0 && q < this.T ? m.slice(q * this.S, (q + 1) * this.S) : null;
  }

  /** How much each target token attends to source token `s` [T]. */
  column(l: number, head: HeadSelection, s: number): Float32Array | null {
    const m = this.matrix(l, head);
    if (!m || s < 0 || s >= this.S) return null;
    return Float32Array.from({ length: this.T }, (_, q) => m[q * this.S + s]);
  }
}
