// SVG export: the matrix view as one rect per cell with every token labelled, and the head view as
// two token columns joined by one line per drawn weight, over all tokens (not only the rows
// scrolled into view). Pure string building from what the exporter gathers (export/exporter.ts);
// every text and attribute value goes through esc(): tokens are untrusted.

/** Colours and font of the figure (the panel's theme). */
export interface FigureStyle {
  bg: string;
  fg: string;
  dim: string;
  focus: string;
  /** The head view's tint of the tokens the active token attends to. */
  accent: string;
  fontFamily: string;
}

export interface MatrixFigure {
  title: string;
  /** The visible tokens as the panel shows them, in order, and which are special. */
  labels: string[];
  special: boolean[];
  /** The heatmap as painted: V x V RGBA pixels, queries down, keys across. */
  rgba: Uint8ClampedArray;
  style: FigureStyle;
}

export interface HeadLine {
  /** Visible positions of the query and the key. */
  q: number;
  k: number;
  w: number;
}

export interface HeadFigure {
  title: string;
  labels: string[];
  special: boolean[];
  /** One per aggregate drawn: its colour, its name, its lines. */
  series: { color: string; label: string; lines: HeadLine[] }[];
  /** The token the lines come from or go to, as a visible position. */
  active: { pos: number; side: 'q' | 'k' } | null;
  /** The active token's weight per visible position (tints the other column), or null. */
  tint: Float32Array | null;
  fontSize: number;
  style: FigureStyle;
}

/** Larger matrices make SVG files of tens of MB: the PNG export suits them better. */
export const MAX_SVG_TOKENS = 512;

const ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' };
/** Characters XML 1.0 cannot hold at all (control characters, lone surrogates, U+FFFE/FFFF). */
const NOT_XML = /[^\t\n\r\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu;

/** Text or an attribute value, escaped for XML. */
export function esc(s: string): string {
  return s.replace(NOT_XML, '\uFFFD').replace(/[&<>"']/g, (c) => ENTITIES[c]);
}

const num = (n: number): string => String(Math.round(n * 100) / 100);
const hex2 = (n: number): string => n.toString(16).padStart(2, '0');

let measurer: CanvasRenderingContext2D | null = null;

/** Fits `text` in `maxW` at `font` (cut with an ellipsis, as the panel does); returns it and its width. */
function fit(text: string, font: string, maxW: number): { text: string; w: number } {
  measurer ??= document.createElement('canvas').getContext('2d');
  if (!measurer) return { text, w: text.length * parseFloat(font) * 0.6 };
  measurer.font = font;
  let w = measurer.measureText(text).width;
  if (w <= maxW) return { text, w };
  while (text.length > 1 && measurer.measureText(text + '…').width > maxW) text = text.slice(0, -1);
  text += '…';
  w = measurer.measureText(text).width;
  return { text, w };
}

function begin(width: number, height: number, title: string, style: FigureStyle): string[] {
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<svg xmlns="http://www.w3.org/2000/svg" width="${num(width)}" height="${num(height)}" viewBox="0 0 ${num(width)} ${num(height)}" font-family="${esc(style.fontFamily)}">`,
    `<title>${esc(title)}</title>`,
    `<rect width="100%" height="100%" fill="${esc(style.bg)}"/>`,
  ];
}

const PAD = 8;
const TITLE_PX = 13;
const titleWidth = (title: string, style: FigureStyle): number => Math.ceil(fit(title, `${TITLE_PX}px ${style.fontFamily}`, Infinity).w);
/** Labels are cut at this many ems: wider than the panel's, since a figure is read zoomed in. */
const LABEL_EM = 24;

export function matrixSvg(f: MatrixFigure): string {
  const V = f.labels.length;
  const { style } = f;
  const cell = Math.max(4, Math.min(24, Math.round(480 / V)));
  const fontPx = Math.min(12, cell * 0.85);
  const font = `${fontPx}px ${style.fontFamily}`;
  const labels = f.labels.map((l) => fit(l, font, fontPx * LABEL_EM));
  const labelW = Math.ceil(Math.max(0, ...labels.map((l) => l.w))) + 6;
  const left = PAD + labelW;
  const top = PAD + TITLE_PX * 2 + labelW;
  const side = V * cell;
  const width = Math.max(left + side + PAD, PAD * 2 + titleWidth(f.title, style));
  const out = begin(width, top + side + PAD, f.title, style);
  out.push(`<text x="${PAD}" y="${PAD + TITLE_PX}" font-size="${TITLE_PX}" fill="${esc(style.fg)}">${esc(f.title)}</text>`);
  // One rect per cell, in cell units: short coordinates and no seams between cells.
  out.push(`<g transform="translate(${num(left)} ${num(top)}) scale(${cell})" class="cells" shape-rendering="crispEdges">`);
  const px = f.rgba;
  for (let i = 0; i < V; i++) {
    for (let j = 0; j < V; j++) {
      const p = (i * V + j) * 4;
      out.push(`<rect x="${j}" y="${i}" width="1" height="1" fill="#${hex2(px[p])}${hex2(px[p + 1])}${hex2(px[p + 2])}"/>`);
    }
  }
  out.push('</g>');
  out.push(`<rect x="${num(left - 0.5)}" y="${num(top - 0.5)}" width="${side + 1}" height="${side + 1}" fill="none" stroke="${esc(style.dim)}"/>`);
  // Row labels end at the matrix's left edge; column labels read upwards from its top edge.
  const color = (i: number): string => esc(f.special[i] ? style.dim : style.fg);
  out.push(`<g font-size="${num(fontPx)}" xml:space="preserve">`);
  for (let i = 0; i < V; i++) {
    out.push(`<text class="row-label" x="${num(left - 4)}" y="${num(top + (i + 0.5) * cell)}" dy="0.35em" text-anchor="end" fill="${color(i)}">${esc(labels[i].text)}</text>`);
  }
  for (let j = 0; j < V; j++) {
    out.push(`<text class="col-label" transform="translate(${num(left + (j + 0.5) * cell)} ${num(top - 4)}) rotate(-90)" dy="0.35em" fill="${color(j)}">${esc(labels[j].text)}</text>`);
  }
  out.push('</g>', '</svg>');
  return out.join('\n');
}

/** The head view's row height and the width between its token columns. */
const ROW_H = 22;
const LINES_W = 240;

export function headSvg(f: HeadFigure): string {
  const V = f.labels.length;
  const { style } = f;
  const font = `${f.fontSize}px ${style.fontFamily}`;
  const labels = f.labels.map((l) => fit(l, font, f.fontSize * LABEL_EM));
  const colW = Math.ceil(Math.max(40, ...labels.map((l) => l.w))) + 12;
  const x1 = PAD + colW;
  const x2 = x1 + LINES_W;
  const legendY = PAD + TITLE_PX + 18;
  const headsY = legendY + 20;
  const top = headsY + 8;
  const legendW = f.series.reduce((w, s) => w + 28 + fit(s.label, `12px ${style.fontFamily}`, Infinity).w, 0);
  const width = Math.max(x2 + colW + PAD, PAD * 2 + Math.max(titleWidth(f.title, style), legendW));
  const out = begin(width, top + V * ROW_H + PAD, f.title, style);
  const y = (pos: number): number => top + pos * ROW_H + ROW_H / 2;
  out.push(`<text x="${PAD}" y="${PAD + TITLE_PX}" font-size="${TITLE_PX}" fill="${esc(style.fg)}">${esc(f.title)}</text>`);
  // Legend: which colour is which aggregate.
  let lx = PAD;
  out.push(`<g font-size="12" fill="${esc(style.fg)}">`);
  for (const s of f.series) {
    out.push(`<circle cx="${num(lx + 5)}" cy="${num(legendY - 4)}" r="4.5" fill="${esc(s.color)}"/>`);
    out.push(`<text x="${num(lx + 14)}" y="${num(legendY)}">${esc(s.label)}</text>`);
    lx += 28 + fit(s.label, `12px ${style.fontFamily}`, Infinity).w;
  }
  out.push('</g>');
  out.push(`<g font-size="11" fill="${esc(style.dim)}">`);
  out.push(`<text x="${PAD}" y="${headsY}">Queries (attend from)</text>`);
  out.push(`<text x="${num(x2 + colW)}" y="${headsY}" text-anchor="end">Keys (attended to)</text>`);
  out.push('</g>');
  // Tints and the active token's highlight, under the text.
  const a = f.active;
  out.push('<g>');
  for (let p = 0; p < V; p++) {
    const t = f.tint && a ? Math.sqrt(Math.min(1, f.tint[p])) : 0;
    if (a && t > 0.15) {
      const x = a.side === 'q' ? x2 : PAD;
      out.push(`<rect x="${num(x)}" y="${num(top + p * ROW_H + 1)}" width="${colW}" height="${ROW_H - 2}" rx="3" fill="${esc(style.accent)}" fill-opacity="${num(t * 0.55)}"/>`);
    }
  }
  if (a) {
    const x = a.side === 'q' ? PAD : x2;
    out.push(`<rect x="${num(x)}" y="${num(top + a.pos * ROW_H + 1)}" width="${colW}" height="${ROW_H - 2}" rx="3" fill="${esc(style.focus)}" fill-opacity="0.3"/>`);
  }
  out.push('</g>');
  // Lines: opacity sqrt(weight), as the panel's intensity scale; the strong ones wider.
  for (const s of f.series) {
    out.push(`<g stroke="${esc(s.color)}" stroke-linecap="butt">`);
    for (const l of s.lines) {
      const w = Math.min(1, l.w);
      out.push(`<line x1="${num(x1)}" y1="${num(y(l.q))}" x2="${num(x2)}" y2="${num(y(l.k))}" stroke-opacity="${num(Math.max(0.01, Math.sqrt(w)))}" stroke-width="${w >= 0.25 ? 2 : 1}"/>`);
    }
    out.push('</g>');
  }
  out.push(`<g font-size="${f.fontSize}" xml:space="preserve">`);
  for (let p = 0; p < V; p++) {
    const fill = esc(f.special[p] ? style.dim : style.fg);
    const weight = (side: 'q' | 'k'): string => (a && a.pos === p && a.side === side ? ' font-weight="bold"' : '');
    const italic = f.special[p] ? ' font-style="italic"' : '';
    const text = esc(labels[p].text);
    out.push(`<text class="q-label" x="${num(x1 - 6)}" y="${num(y(p))}" dy="0.35em" text-anchor="end" fill="${fill}"${italic}${weight('q')}>${text}</text>`);
    out.push(`<text class="k-label" x="${num(x2 + 6)}" y="${num(y(p))}" dy="0.35em" fill="${fill}"${italic}${weight('k')}>${text}</text>`);
  }
  out.push('</g>', '</svg>');
  return out.join('\n');
}
