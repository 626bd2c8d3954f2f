// The export messages through the protocol validators: what each side accepts of the other.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_EXPORT_SCALE, parseHostMessage, parseWebviewMessage } from '../../src/protocol/validate';

describe('export messages on the wire', () => {
  test('export/request: png or svg with a scale above 0 and at most MAX_EXPORT_SCALE', () => {
    assert.deepEqual(parseHostMessage({ type: 'export/request', id: 3, format: 'png', scale: 2 }), { type: 'export/request', id: 3, format: 'png', scale: 2 });
    assert.equal(parseHostMessage({ type: 'export/request', id: 3, format: 'svg', scale: 1 })?.type, 'export/request');
    for (const bad of [
      { id: 3, format: 'jpeg', scale: 1 },
      { id: 3, format: 'png', scale: 0 },
      { id: 3, format: 'png', scale: MAX_EXPORT_SCALE + 1 },
      { id: 3, format: 'png', scale: Number.NaN },
      { id: 3, format: 'png' },
      { id: -1, format: 'png', scale: 1 },
    ]) {
      assert.equal(parseHostMessage({ type: 'export/request', ...bad }), null, JSON.stringify(bad));
    }
  });

  test('export/result: bytes (an ArrayBuffer or any typed array, as bytes), SVG text, or an error', () => {
    const buf = new Uint8Array([1, 2, 3, 4]).buffer;
    assert.equal((parseWebviewMessage({ type: 'export/result', id: 1, data: buf }) as { data: unknown }).data, buf);
    const view = parseWebviewMessage({ type: 'export/result', id: 1, data: new Uint16Array(buf, 2, 1), view: 'matrix', layer: 2, width: 10, height: 20 });
    assert.deepEqual(view, { type: 'export/result', id: 1, data: new Uint8Array([3, 4]), view: 'matrix', layer: 2, width: 10, height: 20 });
    assert.deepEqual(parseWebviewMessage({ type: 'export/result', id: 1, data: '<svg/>', view: 'nowhere', layer: -1 }), { type: 'export/result', id: 1, data: '<svg/>' });
    assert.deepEqual(parseWebviewMessage({ type: 'export/result', id: 1, error: 'no run' }), { type: 'export/result', id: 1, error: 'no run' });
    assert.equal(parseWebviewMessage({ type: 'export/result', id: 1 }), null, 'neither data nor error');
    assert.equal(parseWebviewMessage({ type: 'export/result', id: 1, data: [1, 2] }), null, 'not bytes');
    assert.equal(parseWebviewMessage({ type: 'export/result', data: 'x' }), null, 'no id');
  });

  test('export/menu: one of the four exports, a scale only where valid', () => {
    assert.deepEqual(parseWebviewMessage({ type: 'export/menu', action: 'png', scale: 2 }), { type: 'export/menu', action: 'png', scale: 2 });
    for (const action of ['svg', 'html', 'data']) assert.deepEqual(parseWebviewMessage({ type: 'export/menu', action }), { type: 'export/menu', action });
    assert.equal(parseWebviewMessage({ type: 'export/menu', action: 'pdf' }), null);
    assert.equal(parseWebviewMessage({ type: 'export/menu', action: 'png', scale: 100 }), null);
  });
});
