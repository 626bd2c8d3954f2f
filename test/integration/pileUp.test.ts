// Runs fired in a row on a large selection, as a user pressing Show Attention again and again (or
// typing with live updates) does: the panel must end on the newest run without stepping through
// stale ones, and the host must not send what an older run has not sent yet (src/run/outbox.ts).
import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';
import { extensionApi, useStories, waiter } from './helpers';
import { storyLines } from '../harness/texts';

interface RunEvent {
  runId: number;
  what: 'requested' | 'done' | 'painted' | 'complete' | 'failed';
  at: number;
}
interface Api {
  run: { runId: number; range: { start: number; end: number } } | null;
  events: RunEvent[];
  outbox: { sent: number; sentBytes: number; dropped: number; droppedBytes: number; queued: number; unread: number } | null;
}

const api = () => extensionApi<Api>();
const waitFor = waiter(90_000);


describe('runs fired in a row on a large selection', function () {
  this.timeout(180_000);

  it('the panel ends on the newest run, and older runs stop sending as soon as a newer one is asked for', async () => {
    await useStories();
    await vscode.workspace.getConfiguration('attentionLens').update('maxTokens', 512, vscode.ConfigurationTarget.Global);
    const doc = await vscode.workspace.openTextDocument({ content: storyLines(20_000), language: 'plaintext' });
    const editor = await vscode.window.showTextDocument(doc, vscode.ViewColumn.One);
    editor.selection = new vscode.Selection(new vscode.Position(0, 0), doc.lineAt(doc.lineCount - 1).range.end);

    // One run first, to open the panel and load the model: the size of one run on the wire.
    assert.equal(await vscode.commands.executeCommand('attentionLens.showAttention'), true);
    const a = await api();
    const first = a.run!.runId;
    await waitFor('the first run complete in the panel', () => a.events.some((e) => e.runId === first && e.what === 'complete'));
    const oneRun = a.outbox!.sentBytes;
    assert.ok(oneRun > 10 << 20, `one run sends ${oneRun} bytes of attention`);

    // Then presses in quick succession: each as soon as the host has the last run's attention (or
    // after at most 1.5 s), when the panel cannot have read all of it yet.
    const presses = 10;
    const results: Thenable<unknown>[] = [];
    for (let i = 0; i < presses; i++) {
      editor.selection = new vscode.Selection(new vscode.Position(i, 0), doc.lineAt(doc.lineCount - 1).range.end);
      const before = a.events.length;
      results.push(vscode.commands.executeCommand('attentionLens.showAttention'));
      const until = Date.now() + 1500;
      const settled = () => {
        const id = a.events.slice(before).find((e) => e.what === 'requested')?.runId;
        return id !== undefined && a.events.some((e) => e.runId === id && (e.what === 'done' || e.what === 'failed'));
      };
      while (Date.now() < until && !settled()) await new Promise((r) => setTimeout(r, 20));
    }
    await Promise.allSettled(results);
    const newest = Math.max(...a.events.filter((e) => e.what === 'requested').map((e) => e.runId));
    await waitFor('the newest run complete in the panel', () => a.events.some((e) => e.runId === newest && e.what === 'complete'));
    assert.equal(a.run!.runId, newest, 'the editor follows the newest run');

    await waitFor('every byte sent read by the panel', () => a.outbox!.unread === 0);
    const stats = a.outbox!;
    const t0 = a.events.find((e) => e.runId === first)!.at;
    const byRun = new Map<number, string[]>();
    for (const e of a.events) byRun.set(e.runId, [...(byRun.get(e.runId) ?? []), `${e.what}@${Math.round(e.at - t0)}`]);
    for (const [id, evs] of byRun) console.log(`[pile-up] run ${id}: ${evs.join(' ')}`);
    const completed = new Set(a.events.filter((e) => e.what === 'complete' && e.runId > first).map((e) => e.runId));
    console.log(`[pile-up] ${presses} presses: ${completed.size} completed in the panel; sent ${(stats.sentBytes / oneRun).toFixed(2)} runs' worth, dropped ${stats.dropped} messages (${(stats.droppedBytes / 2 ** 20).toFixed(1)} MiB)`);
    // How much older runs had left unsent when a newer one was asked for (dropped on the host, never
    // copied to the panel) depends on this machine's speed: the benchmark measures what that saves.
    assert.ok(stats.sentBytes + stats.droppedBytes >= oneRun * 1.5, 'runs after the first sent or dropped their attention');
    assert.deepEqual({ queued: stats.queued, unread: stats.unread }, { queued: 0, unread: 0 }, 'nothing left in flight');
    // The panel never went back to an older run after showing a newer one.
    const painted = a.events.filter((e) => e.what === 'painted').map((e) => e.runId);
    assert.deepEqual(painted, [...painted].sort((x, y) => x - y), `painted in order: ${painted.join(', ')}`);
  });
});
