// A small PNG reader for the export tests: checks the signature and decodes 8-bit RGB / RGBA
// (non-interlaced, what a canvas encodes) to count the pixels drawn. Bundled into the suites that
// use it (not a suite itself).
import * as assert from 'node:assert/strict';
import { inflateSync } from 'node:zlib';

export interface Png {
  width: number;
  height: number;
  /** Bytes per pixel: 3 (RGB) or 4 (RGBA). */
  channels: number;
  pixels: Uint8Array;
}

const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

export function readPng(buf: Buffer): Png {
  assert.deepEqual([...buf.subarray(0, 8)], SIGNATURE, 'PNG signature');
  let width = 0;
  let height = 0;
  let channels = 0;
  const idat: Buffer[] = [];
  for (let at = 8; at < buf.length; ) {
    const len = buf.readUInt32BE(at);
    const type = buf.toString('latin1', at + 4, at + 8);
    const data = buf.subarray(at + 8, at + 8 + len);
    if (type === 'IHDR') {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      assert.equal(data[8], 8, '8 bits per channel');
      assert.ok(data[9] === 2 || data[9] === 6, `RGB or RGBA (colour type ${data[9]})`);
      assert.equal(data[12], 0, 'not interlaced');
      channels = data[9] === 6 ? 4 : 3;
    } else if (type === 'IDAT') idat.push(data);
    else if (type === 'IEND') break;
    at += 12 + len;
  }
  assert.ok(width > 0 && height > 0 && idat.length > 0, 'IHDR and image data');
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  const pixels = new Uint8Array(stride * height);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    const out = y * stride;
    for (let x = 0; x < stride; x++) {
      const a = x >= channels ? pixels[out + x - channels] : 0;
      const b = y > 0 ? pixels[out - stride + x] : 0;
      const c = x >= channels && y > 0 ? pixels[out - stride + x - channels] : 0;
      let v = line[x];
      if (filter === 1) v += a;
      else if (filter === 2) v += b;
      else if (filter === 3) v += (a + b) >> 1;
      else if (filter === 4) {
        const p = a + b - c;
        const [pa, pb, pc] = [Math.abs(p - a), Math.abs(p - b), Math.abs(p - c)];
        v += pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      }
      pixels[out + x] = v & 255;
    }
  }
  return { width, height, channels, pixels };
}

/** Pixels that differ from the top-left pixel (the background), and distinct colours (up to 5000). */
export function drawn(png: Png): { lit: number; colours: number } {
  const { pixels: p, channels: n } = png;
  let lit = 0;
  const seen = new Set<number>();
  for (let i = 0; i < p.length; i += n) {
    if (Math.abs(p[i] - p[0]) + Math.abs(p[i + 1] - p[1]) + Math.abs(p[i + 2] - p[2]) > 30) lit++;
    if (seen.size < 5000) seen.add((p[i] << 16) | (p[i + 1] << 8) | p[i + 2]);
  }
  return { lit, colours: seen.size };
}
