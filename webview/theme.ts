// Colours come only from VS Code's theme variables (--vscode-*), read at start and again when the
// theme changes (VS Code swaps the body class and the variables). The heatmap palette is a
// quantised lookup table: weight -> packed RGBA, blending from the editor background through
// the chart accent to the editor foreground, so it reads on light, dark and high-contrast themes.

export type ThemeKind = 'light' | 'dark' | 'high-contrast' | 'high-contrast-light';

export interface Rgb {
  r: number;
  g: number;
  b: number;
}

export interface Theme {
  kind: ThemeKind;
  bg: Rgb;
  fg: Rgb;
  accent: Rgb;
  /** Packed little-endian RGBA (as Uint32Array over ImageData), indexed by round(w * (LUT_SIZE-1)). */
  heat: Uint32Array;
  /** The packed background (weight 0), for clearing. */
  bgPacked: number;
  fgCss: string;
  bgCss: string;
  focusCss: string;
  dimCss: string;
  fontFamily: string;
  fontSize: number;
  /** Colour of head h (lines, chips) and of the aggregates. */
  headCss(h: number, heads: number): string;
  meanCss: string;
  rolloutCss: string;
  /**
   * Compare's diverging palette: packed RGBA indexed by round((d + 1) / 2 * (DIFF_LUT_SIZE - 1))
   * for a difference d in [-1, 1]; blue (less attention than the baseline) through the background
   * (no change) to red (more), intensity sqrt(|d|) as the heat palette's.
   */
  diff: Uint32Array;
  /** A cell with no counterpart in the other run (a gap): a neutral grey, never a palette colour. */
  gapPacked: number;
  gapCss: string;
  /** The palette's ends: less and more attention than the baseline. */
  lessCss: string;
  moreCss: string;
}

export const LUT_SIZE = 1024;
/** Odd, so that a difference of exactly 0 has an entry of its own: the background. */
export const DIFF_LUT_SIZE = 1025;

let probe: CanvasRenderingContext2D | null = null;

/** Resolves any CSS colour string to RGB via a 1x1 canvas (handles #rgb, rgba(), names). */
export function parseColor(css: string, fallback: Rgb): Rgb {
  const value = css.trim();
  if (!value) return fallback;
  if (!probe) {
    const c = document.createElement('canvas');
    c.width = c.height = 1;
    probe = c.getContext('2d', { willReadFrequently: true });
  }
  if (!probe) return fallback;
  probe.clearRect(0, 0, 1, 1);
  probe.fillStyle = '#010203';
  probe.fillStyle = value; // an invalid colour leaves the sentinel in place
  if (probe.fillStyle === '#010203' && value !== '#010203') return fallback;
  probe.fillRect(0, 0, 1, 1);
  const d = probe.getImageData(0, 0, 1, 1).data;
  if (d[3] === 0) return fallback;
  // Composite a translucent colour over the fallback so the result is opaque.
  const a = d[3] / 255;
  return {
    r: Math.round(d[0] * a + fallback.r * (1 - a)),
    g: Math.round(d[1] * a + fallback.g * (1 - a)),
    b: Math.round(d[2] * a + fallback.b * (1 - a)),
  };
}

export function themeKind(): ThemeKind {
  const c = document.body.classList;
  if (c.contains('vscode-high-contrast-light')) return 'high-contrast-light';
  if (c.contains('vscode-high-contrast')) return 'high-contrast';
  if (c.contains('vscode-light')) return 'light';
  return 'dark';
}

const pack = (r: number, g: number, b: number): number => ((255 << 24) | (b << 16) | (g << 8) | r) >>> 0;
const css = (c: Rgb): string => `rgb(${c.r}, ${c.g}, ${c.b})`;
const mix = (a: number, b: number, t: number): number => Math.round(a + (b - a) * t);

/**
 * Builds the heat table. Display intensity is sqrt(weight): attention rows over hundreds of
 * tokens are mostly small numbers, and a linear ramp would leave them invisible.
 */
export function buildHeatLut(bg: Rgb, accent: Rgb, fg: Rgb, twoStop: boolean): Uint32Array {
  const lut = new Uint32Array(LUT_SIZE);
  for (let i = 0; i < LUT_SIZE; i++) {
    const t = Math.sqrt(i / (LUT_SIZE - 1));
    let r: number, g: number, b: number;
    if (!twoStop) {
      r = mix(bg.r, fg.r, t);
      g = mix(bg.g, fg.g, t);
      b = mix(bg.b, fg.b, t);
    } else if (t < 0.65) {
      const u = t / 0.65;
      r = mix(bg.r, accent.r, u);
      g = mix(bg.g, accent.g, u);
      b = mix(bg.b, accent.b, u);
    } else {
      const u = (t - 0.65) / 0.35;
      r = mix(accent.r, fg.r, u);
      g = mix(accent.g, fg.g, u);
      b = mix(accent.b, fg.b, u);
    }
    lut[i] = pack(r, g, b);
  }
  return lut;
}

/** Builds Compare's diverging table (Theme.diff) from the background and the two ends. */
export function buildDiffLut(bg: Rgb, less: Rgb, more: Rgb): Uint32Array {
  const lut = new Uint32Array(DIFF_LUT_SIZE);
  const mid = (DIFF_LUT_SIZE - 1) / 2;
  for (let i = 0; i < DIFF_LUT_SIZE; i++) {
    const d = (i - mid) / mid;
    const end = d < 0 ? less : more;
    const t = Math.sqrt(Math.abs(d));
    lut[i] = pack(mix(bg.r, end.r, t), mix(bg.g, end.g, t), mix(bg.b, end.b, t));
  }
  return lut;
}

export function readTheme(): Theme {
  const kind = themeKind();
  const style = getComputedStyle(document.body);
  const v = (name: string): string => style.getPropertyValue(name);
  const light = kind === 'light' || kind === 'high-contrast-light';
  const defBg: Rgb = light ? { r: 255, g: 255, b: 255 } : { r: 30, g: 30, b: 30 };
  const defFg: Rgb = light ? { r: 30, g: 30, b: 30 } : { r: 212, g: 212, b: 212 };
  const bg = parseColor(v('--vscode-editor-background'), defBg);
  const fg = parseColor(v('--vscode-editor-foreground') || v('--vscode-foreground'), defFg);
  const accent = parseColor(v('--vscode-charts-blue') || v('--vscode-focusBorder'), light ? { r: 0, g: 100, b: 200 } : { r: 55, g: 148, b: 255 });
  const hc = kind === 'high-contrast' || kind === 'high-contrast-light';
  const heat = buildHeatLut(bg, accent, fg, !hc);
  const chart = ['--vscode-charts-blue', '--vscode-charts-orange', '--vscode-charts-green', '--vscode-charts-purple', '--vscode-charts-red', '--vscode-charts-yellow']
    .map((n) => v(n).trim())
    .filter((s) => s.length > 0);
  const fontSize = parseFloat(v('--vscode-editor-font-size')) || parseFloat(style.fontSize) || 13;
  const less = parseColor(v('--vscode-charts-blue'), light ? { r: 0, g: 100, b: 200 } : { r: 55, g: 148, b: 255 });
  const more = parseColor(v('--vscode-charts-red'), light ? { r: 229, g: 20, b: 0 } : { r: 241, g: 76, b: 76 });
  const gap = { r: mix(bg.r, fg.r, 0.22), g: mix(bg.g, fg.g, 0.22), b: mix(bg.b, fg.b, 0.22) };
  return {
    kind,
    bg,
    fg,
    accent,
    heat,
    bgPacked: heat[0],
    fgCss: css(fg),
    bgCss: css(bg),
    focusCss: css(parseColor(v('--vscode-focusBorder'), accent)),
    dimCss: css({ r: mix(bg.r, fg.r, 0.55), g: mix(bg.g, fg.g, 0.55), b: mix(bg.b, fg.b, 0.55) }),
    fontFamily: v('--vscode-editor-font-family').trim() || 'monospace',
    fontSize,
    headCss(h: number, heads: number): string {
      if (heads <= chart.length) return chart[h] ?? css(fg);
      const hue = Math.round((h * 360) / heads + 210) % 360;
      return `hsl(${hue}, ${hc ? 100 : 70}%, ${light ? 38 : 62}%)`;
    },
    meanCss: css(fg),
    rolloutCss: v('--vscode-charts-purple').trim() || css(accent),
    diff: buildDiffLut(bg, less, more),
    gapPacked: pack(gap.r, gap.g, gap.b),
    gapCss: css(gap),
    lessCss: css(less),
    moreCss: css(more),
  };
}

/** Calls `onChange` when VS Code switches theme (body class or inline variables change). */
export function watchTheme(onChange: () => void): void {
  let pending = false;
  const fire = (): void => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      onChange();
    });
  };
  const mo = new MutationObserver(fire);
  mo.observe(document.body, { attributes: true, attributeFilter: ['class'] });
  mo.observe(document.documentElement, { attributes: true, attributeFilter: ['style', 'class'] });
}
