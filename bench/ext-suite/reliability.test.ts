// Runs inside the real extension host (code-server, the panel rendered in Chromium), bundled by
// bench/reliability.ts: a user pressing Show Attention again and again on a whole large file, as
// in the trial that found runs piling up. Measures the host's resident memory after 5 and after
// all runs, and how long after the newest run is done on the host the panel shows it; writes the
// figures to $ATTENTION_LENS_BENCH_OUT.
import * as fs from 'node:fs';
import * as vscode from 'vscode';

const EXTENSION_ID = 'attention-lens.attention-lens';
const RUNS = Number(process.env.RELIABILITY_RUNS ?? 50);
/** Between presses: about how long a run takes here, so runs overlap the panel's work as in the trial. */
const GAP_MS = Number(process.env.RELIABILITY_GAP_MS ?? 2300);

interface RunEvent {
  runId: number;
  what: string;
  at: number;
}
interface Api {
  events?: RunEvent[];
  outbox?: Record<string, number> | null;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const mib = (b: number) => Math.round((b / 2 ** 20) * 10) / 10;

describe('bench: runs in a row', () => {
  it(`presses Show Attention ${RUNS} times on a whole large file`, async function () {
    this.timeout(30 * 60_000);
    const out = process.env.ATTENTION_LENS_BENCH_OUT;
    const model = process.env.RELIABILITY_MODEL;
    if (!out || !model) throw new Error('ATTENTION_LENS_BENCH_OUT and RELIABILITY_MODEL must be set');
    const config = vscode.workspace.getConfiguration('attentionLens');
    await config.update('model', model, vscode.ConfigurationTarget.Global);
    await config.update('offline', true, vscode.ConfigurationTarget.Global);
    await config.update('maxTokens', 512, vscode.ConfigurationTarget.Global);
    const file = vscode.workspace.workspaceFolders![0].uri.with({ path: `${vscode.workspace.workspaceFolders![0].uri.path}/big.txt` });
    const doc = await vscode.workspace.openTextDocument(file);
    const editor = await vscode.window.showTextDocument(doc, vscode.ViewColumn.One);
    editor.selection = new vscode.Selection(new vscode.Position(0, 0), doc.lineAt(doc.lineCount - 1).range.end);
    const api = (await vscode.extensions.getExtension<Api>(EXTENSION_ID)!.activate()) ?? {};

    const rss: number[] = [];
    const presses: Thenable<unknown>[] = [];
    const t0 = performance.now();
    for (let i = 1; i <= RUNS; i++) {
      presses.push(vscode.commands.executeCommand('attentionLens.showAttention'));
      await sleep(GAP_MS);
      rss.push(process.memoryUsage().rss);
    }
    await Promise.allSettled(presses);
    const events = api.events;
    let shownMs: number | null = null;
    let completeMs: number | null = null;
    if (events) {
      const newest = Math.max(...events.filter((e) => e.what === 'requested').map((e) => e.runId));
      const at = (what: string) => events.find((e) => e.runId === newest && e.what === what)?.at;
      for (let i = 0; i < 600 && at('complete') === undefined; i++) await sleep(100);
      const done = at('done');
      if (done !== undefined) {
        shownMs = at('painted') !== undefined ? Math.max(0, at('painted')! - done) : null;
        completeMs = at('complete') !== undefined ? Math.max(0, at('complete')! - done) : null;
      }
    }
    await sleep(3000); // the host settles
    const settled = process.memoryUsage();
    const completed = events ? new Set(events.filter((e) => e.what === 'complete').map((e) => e.runId)).size : null;
    const result = {
      runs: RUNS,
      gap_ms: GAP_MS,
      total_s: Math.round((performance.now() - t0) / 100) / 10,
      rss_mib_after: rss.map(mib),
      rss_after_5_mib: mib(rss[4]),
      rss_after_all_mib: mib(settled.rss),
      host_rss_growth: Math.round((settled.rss / rss[4]) * 1000) / 1000,
      heap_used_mib: mib(settled.heapUsed),
      external_mib: mib(settled.external),
      array_buffers_mib: mib(settled.arrayBuffers),
      newest_run_shown_ms: shownMs === null ? null : Math.round(shownMs),
      newest_run_complete_ms: completeMs === null ? null : Math.round(completeMs),
      runs_completed_in_panel: completed,
      outbox: api.outbox ?? null,
    };
    fs.writeFileSync(out, JSON.stringify(result, null, 2));
  });
});
