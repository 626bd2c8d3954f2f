// The targets ("Fluid at 512 tokens"), printed beside the measured values. Nothing asserts.
import * as os from 'node:os';
export interface Target {
  /** Shown in tables, e.g. "<= 16 ms". */
  label: string;
  met(value: number): boolean;
}

export const atMost = (limit: number, unit = ''): Target => ({ label: `<= ${limit}${unit ? ' ' + unit : ''}`, met: (v) => v <= limit });
export const below = (limit: number, unit = ''): Target => ({ label: `< ${limit}${unit ? ' ' + unit : ''}`, met: (v) => v < limit });

export const TARGETS = {
  ratioT128: atMost(1.1),
  ratioT512: atMost(1.15),
  /** Fused GroupQueryAttention (issue 12): qk_output=2 plus the float16 casts, on a Qwen2.5-0.5B-shaped model. */
  fusedRatioT512: atMost(1.3),
  bytesPerCell: atMost(2, 'B'),
  allLayersT512: atMost(1500, 'ms'),
  allLayersT128: atMost(300, 'ms'),
  hoverP95T512: atMost(16, 'ms'),
  hostBlock: atMost(50, 'ms'),
  activation: below(100, 'ms'),
  heapGrowth: atMost(1.1),
  /** Issue 15: the panel's (JS heap + ArrayBuffers) after run 50 / after run 1. */
  webviewGrowth: atMost(1.1),
  /** Issue 15: the panel's JS heap after run 150 / after run 100. */
  webviewLateGrowth: atMost(1.02),
  /** Issue 15: the panel's DOM node count stays constant (most it differs from run 1's). */
  domNodesChange: atMost(0, 'nodes'),
  hostRssGrowth: atMost(1.2),
  newestRunShown: atMost(2000, 'ms'),
  /** Issue 14: a plain run after a capture was made (and kept) / a plain run that never captured: "unchanged within noise". */
  explainPlainRatio: atMost(1.05),
  /** Issue 14: "Why this weight?" opens within 100 ms of a click at T=512 (the capture kept). */
  explainOpen: atMost(100, 'ms'),
  /** Issue part 4 (long inputs): every layer's thumbnails out of the worker after the chunked prefill, T=4096 (panel painting not included yet). */
  longctxGridT4096: atMost(5000, 'ms'),
  /** Issue part 4: every layer's attention row of one token, worker round trip, p95 at T=4096. */
  longctxRowP95T4096: atMost(50, 'ms'),
  /** Issue part 4: process RSS above the loaded model's during the prefill and rows, T=8192. */
  longctxPeakT8192: atMost(1536, 'MB'),
};

/** "PASS" / "MISS" / "n/a" (value missing or not a number). */
export function verdict(value: number | null | undefined, target: Target): string {
  if (typeof value !== 'number' || !Number.isFinite(value)) return 'n/a';
  return target.met(value) ? 'PASS' : 'MISS';
}

/** The machine's load averages (1, 5, 15 min): other processes share this machine. */
export function loadAvg(): number[] {
  return os.loadavg().map((x) => Number(x.toFixed(2)));
}
