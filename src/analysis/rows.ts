// Rows of a long run's attention (src/engine/long.ts), as they come on demand: per query token,
// each layer's [heads][T] float32 row. A long run holds no whole layer, so hovers and top words
// read these; the cache keeps the most recently used queries within a byte budget.
import type { RowsData, WireData } from '../protocol/attention';

/** Bytes of rows kept per run: at T = 8,192 with 12 x 12 heads a query's rows are 4.7 MB. */
const BUDGET_BYTES = 64 * 2 ** 20;

export class RowCache {
  /** query -> its rows per layer ([H][T] each; undefined for a layer not fetched). */
  private readonly rows = new Map<number, (Float32Array | undefined)[]>();
  private bytes = 0;

  constructor(private readonly L: number, private readonly H: number, private readonly T: number, private readonly budget = BUDGET_BYTES) {}

  /** Stores rows over all keys (a window of keys is not a row and is not kept); throws when a size is wrong. */
  add(r: RowsData<WireData>): void {
    const { L, H, T } = this;
    if (r.start + r.count > T || r.layers.some((l) => l >= L)) throw new Error(`rows ${r.start}..${r.start + r.count - 1} of layers ${r.layers.join(',')}: the run has ${T} tokens and ${L} layers`);
    if (r.keyStart !== 0 || r.keyCount !== T) return;
    r.layers.forEach((l, i) => {
      const d = asFloat32(r.data[i]);
      if (d.length !== H * r.count * T) throw new Error(`rows of layer ${l}: ${d.length} values, expected ${H * r.count * T}`);
      for (let k = 0; k < r.count; k++) {
        const q = r.start + k;
        let per = this.rows.get(q);
        if (!per) this.rows.set(q, (per = new Array(L).fill(undefined)));
        if (per[l]) continue;
        const row = new Float32Array(H * T);
        for (let h = 0; h < H; h++) row.set(d.subarray((h * r.count + k) * T, (h * r.count + k + 1) * T), h * T);
        per[l] = row;
        this.bytes += row.byteLength;
      }
    });
    this.evict();
  }

  /** Query `q`'s rows of layer `l` ([H][T]), or undefined when they have not come. */
  get(l: number, q: number): Float32Array | undefined {
    const per = this.rows.get(q);
    const row = per?.[l];
    if (row) {
      // Most recently used last.
      this.rows.delete(q);
      this.rows.set(q, per);
    }
    return row;
  }

  /** Whether every layer of query `q` is here. */
  hasAll(q: number): boolean {
    const per = this.rows.get(q);
    return per !== undefined && per.every((r) => r !== undefined);
  }

  private evict(): void {
    for (const [q, per] of this.rows) {
      if (this.bytes <= this.budget || this.rows.size <= 1) return;
      this.rows.delete(q);
      for (const r of per) this.bytes -= r?.byteLength ?? 0;
    }
  }
}

function asFloat32(d: WireData): Float32Array {
  if (d instanceof Float32Array) return d;
  if (d instanceof ArrayBuffer) return new Float32Array(d);
  // A Uint8Array view some hosts deliver: copy when it is not 4-byte aligned.
  const v = d as ArrayBufferView;
  return v.byteOffset % 4 === 0 ? new Float32Array(v.buffer, v.byteOffset, v.byteLength / 4) : new Float32Array(new Uint8Array(v.buffer, v.byteOffset, v.byteLength).slice().buffer);
}

/** One head's row (or the heads' mean) of a query's layer rows [H][T]. */
export function headRow(rows: Float32Array, H: number, T: number, head: number | 'mean'): Float32Array {
  if (head !== 'mean') return rows.slice(head * T, (head + 1) * T);
  const out = new Float32Array(T);
  for (let h = 0; h < H; h++) for (let j = 0; j < T; j++) out[j] += rows[h * T + j];
  const inv = 1 / H;
  for (let j = 0; j < T; j++) out[j] *= inv;
  return out;
}
