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
  hostRssGrowth: atMost(1.2),
  newestRunShown: atMost(2000, 'ms'),
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
