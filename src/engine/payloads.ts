// What the worker hands the host for one run, in the order the panel should get it: every layer's
// thumbnails first (a few MB: the model view's grid paints from them), then the full layers, which
// the head and matrix views, hovers and rollout need. Each payload owns its buffer (transferable).
import { encodeF16, encodeU8, layerTensor, layerThumbs, packF14 } from '../analysis';
import type { AttentionEncoding, AttentionPayload } from '../protocol/attention';
import type { AttentionResult, Seq2seqResult } from './types';
import type { LongAttention } from './long';

export function* runPayloads(result: Pick<AttentionResult, 'attention' | 'shape' | 'encoding'>): Generator<AttentionPayload> {
  const [L, H, T] = result.shape;
  const stride = H * T * T;
  const layer = (l: number) => result.attention.subarray(l * stride, (l + 1) * stride);
  for (let l = 0; l < L; l++) {
    const thumbs = layerThumbs(layerTensor(layer(l), result.encoding, H, T));
    if (thumbs) yield { kind: 'thumbs', layer: l, ...thumbs };
  }
  for (let l = 0; l < L; l++) {
    const d = layer(l);
    const packed = d instanceof Uint16Array ? packF14(d) : null;
    yield { kind: 'layer', layer: l, data: (packed ?? d.slice()).buffer as ArrayBuffer, packed: packed !== null };
  }
}

/** A long run's payloads: every layer's thumbnails, pooled during its prefill; its rows come on request. */
export function* longPayloads(long: LongAttention, encoding: AttentionEncoding): Generator<AttentionPayload> {
  for (let l = 0; l < long.L; l++) {
    const thumbs = long.thumbs(l, encoding);
    if (thumbs) yield { kind: 'thumbs', layer: l, ...thumbs };
  }
}

/**
 * An encoder-decoder run's payloads: the decoder's self-attention (the run's main part), then the
 * encoder's (part 'encoder'), both in `encoding`, then the cross-attention, float32 (part 'cross').
 */
export function* seq2seqPayloads(r: Pick<Seq2seqResult, 'encoder' | 'encoderShape' | 'decoder' | 'decoderShape' | 'cross' | 'crossShape'>, encoding: AttentionEncoding): Generator<AttentionPayload> {
  const encode = (a: Float32Array) => (encoding === 'f16' ? encodeF16(a) : encoding === 'u8' ? encodeU8(a) : a);
  yield* runPayloads({ attention: encode(r.decoder), shape: r.decoderShape, encoding });
  for (const p of runPayloads({ attention: encode(r.encoder), shape: r.encoderShape, encoding })) yield { ...p, part: 'encoder' };
  const [L, H, T, S] = r.crossShape;
  const stride = H * T * S;
  for (let l = 0; l < L; l++) yield { kind: 'layer', layer: l, data: r.cross.slice(l * stride, (l + 1) * stride).buffer, packed: false, part: 'cross' };
}

/**
 * Sends a run's payloads, giving the event loop a turn after each: computing them (thumbnails,
 * packing) takes up to a second at T=512, and a cancel or a newer request must not wait for all of
 * it. Once `signal` is aborted it stops, and the payloads not sent are never computed. Resolves
 * true when it sent them all.
 */
export async function streamPayloads(payloads: Iterable<AttentionPayload>, send: (p: AttentionPayload) => void, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return false;
  for (const p of payloads) {
    send(p);
    await new Promise<void>((resolve) => setImmediate(resolve));
    if (signal.aborted) return false; // before the next payload is computed
  }
  return true;
}
