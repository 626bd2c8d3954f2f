// The host's outbox to the panel: attention goes out with a bounded amount unread, in order, and a
// newer run drops what older runs have not sent.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { Outbox } from '../../src/run/outbox';
import type { HostToWebview, RunLayerMessage } from '../../src/protocol/webview';

const MB = 1 << 20;
const layer = (runId: number, l: number, bytes = MB): RunLayerMessage => ({ type: 'run/layer', runId, layer: l, data: new ArrayBuffer(bytes) });
const start = (runId: number): HostToWebview => ({
  type: 'run/start',
  runId,
  model: { id: 'm', architecture: 'bert', kind: 'encoder', layers: 12, heads: 12, maxLength: 512 },
  tokens: [{ text: '[CLS]', start: -1, end: -1, special: true }],
  encoding: 'f16',
  source: '',
  truncation: null,
  notices: [],
});
const label = (m: HostToWebview) => `${m.type}${'runId' in m ? `:${m.runId}` : ''}${m.type === 'run/layer' ? `:${m.layer}` : ''}`;

function outbox(windowBytes = 4 * MB) {
  const sent: HostToWebview[] = [];
  return { sent, box: new Outbox((m) => sent.push(m), windowBytes) };
}

describe('Outbox', () => {
  test('sends attention while at most the window is unread, the rest as the panel acknowledges it', () => {
    const { sent, box } = outbox();
    box.push(start(1));
    for (let l = 0; l < 10; l++) box.push(layer(1, l));
    box.push({ type: 'run/done', runId: 1, timings: {}, runtime: 'cpu' });
    assert.deepEqual(sent.map(label), ['run/start:1', 'run/layer:1:0', 'run/layer:1:1', 'run/layer:1:2', 'run/layer:1:3']);
    assert.deepEqual(box.backlog, { queued: 7, unread: 4 * MB });
    box.ack(MB);
    assert.equal(sent.length, 6, 'one read, one more sent');
    box.ack(5 * MB); // more than is unread: never negative
    for (let i = 0; i < 6; i++) box.ack(MB);
    assert.deepEqual(sent.map(label).slice(-2), ['run/layer:1:9', 'run/done:1'], 'in order, done last');
    assert.deepEqual(box.backlog, { queued: 0, unread: 0 });
    assert.deepEqual(box.stats, { sent: 12, sentBytes: 10 * MB, dropped: 0, droppedBytes: 0 });
  });

  test('a newer run drops what older runs have not sent; messages of no run stay, in order', () => {
    const { sent, box } = outbox();
    box.push(start(1));
    for (let l = 0; l < 8; l++) box.push(layer(1, l));
    box.push({ type: 'status', message: 'Running…' });
    box.supersede(2); // the user asked again: run 1's unsent layers go at once
    assert.equal(label(sent[sent.length - 1]), 'status', 'the status no longer waits behind them');
    assert.deepEqual(box.backlog, { queued: 0, unread: 4 * MB }, 'what was sent is still unread');
    assert.equal(box.stats.dropped, 4);
    assert.equal(box.stats.droppedBytes, 4 * MB);
    box.push(layer(1, 8)); // late messages of the old run never go
    box.push(start(2));
    box.push(layer(2, 0));
    assert.equal(label(sent[sent.length - 1]), 'run/start:2');
    for (let i = 0; i < 4; i++) box.ack(MB); // the panel reads (and drops) run 1's layers in flight
    assert.deepEqual(sent.map(label).slice(5), ['status', 'run/start:2', 'run/layer:2:0']);
    assert.equal(box.stats.dropped, 5);
  });

  test("a run/start supersedes by itself; a layer larger than the window goes when nothing is unread", () => {
    const { sent, box } = outbox(MB);
    box.push(start(3));
    box.push(layer(3, 0, 3 * MB));
    box.push(layer(3, 1, 3 * MB));
    assert.deepEqual(sent.map(label), ['run/start:3', 'run/layer:3:0']);
    box.push(start(4));
    box.ack(3 * MB);
    assert.deepEqual(sent.map(label), ['run/start:3', 'run/layer:3:0', 'run/start:4']);
    box.push(start(3)); // an older run's start after a newer one's: dropped
    assert.equal(sent.length, 3);
  });
});
