// A long run's rows as the host fetches them from the engine (src/engine/long.ts): one query's
// rows of every layer at a time, the newest wanted query first. Hovers sweep across many tokens;
// only the one under the pointer when the engine is free is worth a pass over the cache.
import type { RowsData } from '../protocol/attention';
import type { Run } from './run';

export class RowFetcher {
  private inFlight: number | null = null;
  private wanted: number | null = null;
  private readonly waiters = new Map<number, ((ok: boolean) => void)[]>();
  /** The last fetch's error, for hovers to say why there is nothing. */
  lastError: string | null = null;

  constructor(
    private readonly run: Run,
    private readonly fetch: (q: number) => Promise<RowsData>,
    /** Called with each answer once the run stored it (the host forwards it to the panel). */
    private readonly onRows: (rows: RowsData) => void,
  ) {}

  /** Resolves true once query `q`'s rows are in the run; false when a newer query replaced it before its turn, or the fetch failed. */
  want(q: number): Promise<boolean> {
    if (this.run.hasRows(q)) return Promise.resolve(true);
    return new Promise((resolve) => {
      const list = this.waiters.get(q) ?? [];
      list.push(resolve);
      this.waiters.set(q, list);
      if (q !== this.inFlight) {
        if (this.wanted !== null && this.wanted !== q) this.settle(this.wanted, false);
        this.wanted = q;
      }
      void this.pump();
    });
  }

  private settle(q: number, ok: boolean): void {
    const list = this.waiters.get(q) ?? [];
    this.waiters.delete(q);
    for (const resolve of list) resolve(ok);
  }

  private async pump(): Promise<void> {
    if (this.inFlight !== null || this.wanted === null) return;
    const q = (this.inFlight = this.wanted);
    this.wanted = null;
    try {
      const rows = await this.fetch(q);
      this.run.addRows(rows);
      this.onRows(rows);
      this.lastError = null;
    } catch (e) {
      this.lastError = e instanceof Error ? e.message : String(e);
    }
    this.inFlight = null;
    this.settle(q, this.run.hasRows(q));
    void this.pump();
  }
}
