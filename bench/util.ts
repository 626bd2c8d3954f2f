// Shared helpers of the benchmark sections: paths, the generated model, statistics, tables.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

export const ROOT = path.resolve(__dirname, '..');
export const MODEL_DIR = path.join(ROOT, 'bench/models/bert-base-random');
export const OUT = path.join(ROOT, 'bench/out/latest.json');

export function ensureModel(): string {
  if (!fs.existsSync(path.join(MODEL_DIR, 'onnx/model.onnx'))) {
    console.log('Generating the BERT-base-shaped random model (once)…');
    execFileSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'bench/make-bert-base.ts'), MODEL_DIR], { stdio: 'inherit', cwd: ROOT });
  }
  return MODEL_DIR;
}

export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
export const percentile = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
};
export const round = (x: number, digits = 2): number => Number(x.toFixed(digits));

export function table(title: string, rows: Array<Record<string, string | number>>): void {
  if (!rows.length) return;
  const cols = Object.keys(rows[0]);
  const width = cols.map((c) => Math.max(c.length, ...rows.map((r) => String(r[c]).length)));
  const line = (cells: string[]) => '| ' + cells.map((c, i) => c.padEnd(width[i])).join(' | ') + ' |';
  console.log(`\n${title}`);
  console.log(line(cols));
  console.log('|' + width.map((w) => '-'.repeat(w + 2)).join('|') + '|');
  for (const r of rows) console.log(line(cols.map((c) => String(r[c]))));
}

/** mulberry32: small, fast, seeded uniforms in [0, 1); good enough for generated weights and sampled tokens. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Normal samples from mulberry32 uniforms via Box-Muller, for the generated models' weights. */
export function gaussian(seed: number) {
  const uniform = mulberry32(seed);
  return (out: Float32Array, std: number) => {
    for (let i = 0; i < out.length; i += 2) {
      const r = Math.sqrt(-2 * Math.log(1 - uniform())) * std;
      const th = 2 * Math.PI * uniform();
      out[i] = r * Math.cos(th);
      if (i + 1 < out.length) out[i + 1] = r * Math.sin(th);
    }
    return out;
  };
}

