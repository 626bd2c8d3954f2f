// PNG export: the view on screen composed into one canvas at `ratio` device pixels per CSS pixel.
// The views first repaint their own canvases at that ratio (pixelRatio.ts), so labels and lines
// stay sharp at 2x; the heatmaps keep one pixel per cell and are scaled without smoothing, as on
// screen. Around them, the boxes (backgrounds, borders, the token tints) and text are read from the
// DOM and painted in document order. Focus outlines are left out: keyboard focus is no part of a
// figure. A webview cannot screenshot itself, and an SVG <foreignObject> would taint the canvas.

import { atPixelRatio } from '../pixelRatio';

/** Canvas limits Chromium can encode reliably. */
const MAX_SIDE = 16384;
const MAX_AREA = 64 * 1024 * 1024;

/** The PNG's size for `root` at `ratio`: its CSS box in device pixels. */
export function pngSize(root: HTMLElement, ratio: number): { width: number; height: number } {
  const box = root.getBoundingClientRect();
  return { width: Math.round(box.width * ratio), height: Math.round(box.height * ratio) };
}

/** Repaints the view at `ratio` (`repaint` paints the view now), captures it, repaints it back, and encodes the capture. */
export async function renderPng(root: HTMLElement, ratio: number, background: string, repaint: () => void): Promise<{ data: ArrayBuffer; width: number; height: number }> {
  const { width, height } = pngSize(root, ratio);
  if (width < 1 || height < 1) throw new Error('The view has no size on screen: show the panel and export again.');
  if (width > MAX_SIDE || height > MAX_SIDE || width * height > MAX_AREA) {
    throw new Error(`A ${width} × ${height} image is larger than the panel can encode: export at a smaller scale.`);
  }
  let canvas: HTMLCanvasElement;
  try {
    canvas = atPixelRatio(ratio, () => {
      repaint();
      return compose(root, ratio, width, height, background);
    });
  } finally {
    repaint();
  }
  const blob = await new Promise<Blob | null>((resolve) => canvas.toBlob(resolve, 'image/png'));
  if (!blob) throw new Error('The panel could not encode the PNG.');
  return { data: await blob.arrayBuffer(), width, height };
}

function compose(root: HTMLElement, ratio: number, width: number, height: number, background: string): HTMLCanvasElement {
  const canvas = document.createElement('canvas');
  canvas.width = width;
  canvas.height = height;
  const g = canvas.getContext('2d');
  if (!g) throw new Error('The panel could not create a canvas for the PNG.');
  g.fillStyle = background;
  g.fillRect(0, 0, width, height);
  const box = root.getBoundingClientRect();
  g.setTransform(ratio, 0, 0, ratio, -box.left * ratio, -box.top * ratio);
  // The view's own opacity dims a run that a newer one is replacing: not part of the picture.
  paintElement(g, root, 1, true);
  return canvas;
}

const px = (v: string): number => parseFloat(v) || 0;

function transparent(color: string): boolean {
  return color === 'transparent' || /^rgba\(.*,\s*0\)$/.test(color);
}

function paintElement(g: CanvasRenderingContext2D, e: Element, alpha: number, isRoot = false): void {
  const s = getComputedStyle(e);
  if (s.display === 'none') return;
  // Screen-reader-only text (clipped away on screen).
  if (s.position === 'absolute' && s.clip !== 'auto' && s.clip !== '') return;
  const a = isRoot ? alpha : alpha * Number(s.opacity);
  if (!(a > 0)) return;
  const r = e.getBoundingClientRect();
  const shown = s.visibility === 'visible';
  g.save();
  g.globalAlpha = a;
  if (shown) {
    paintBox(g, s, r);
    paintBefore(g, e, r, a);
    if (e instanceof HTMLCanvasElement && e.width > 0 && e.height > 0) {
      g.imageSmoothingEnabled = s.imageRendering !== 'pixelated';
      g.drawImage(e, r.left + e.clientLeft, r.top + e.clientTop, e.clientWidth, e.clientHeight);
    }
  }
  if (s.overflowX !== 'visible' || s.overflowY !== 'visible') {
    g.beginPath();
    g.rect(r.left + e.clientLeft, r.top + e.clientTop, e.clientWidth, e.clientHeight);
    g.clip();
  }
  for (const child of e.childNodes) {
    if (child instanceof Element) paintElement(g, child, a);
    else if (child instanceof Text && shown) paintText(g, child, s);
  }
  g.restore();
}

/** Background, borders and the box shadows the panel uses (rings and inset bars, no blur). */
function paintBox(g: CanvasRenderingContext2D, s: CSSStyleDeclaration, r: DOMRect): void {
  const radius = px(s.borderTopLeftRadius);
  if (!transparent(s.backgroundColor)) {
    g.fillStyle = s.backgroundColor;
    g.beginPath();
    g.roundRect(r.left, r.top, r.width, r.height, Math.min(radius, r.width / 2, r.height / 2));
    g.fill();
  }
  const sides = (['Top', 'Right', 'Bottom', 'Left'] as const).map((side) => ({
    w: s.getPropertyValue(`border-${side.toLowerCase()}-style`) === 'none' ? 0 : px(s.getPropertyValue(`border-${side.toLowerCase()}-width`)),
    color: s.getPropertyValue(`border-${side.toLowerCase()}-color`),
  }));
  const [t, ri, b, l] = sides;
  if (sides.every((x) => x.w === t.w && x.color === t.color)) {
    if (t.w > 0 && !transparent(t.color)) {
      g.strokeStyle = t.color;
      g.lineWidth = t.w;
      g.beginPath();
      g.roundRect(r.left + t.w / 2, r.top + t.w / 2, r.width - t.w, r.height - t.w, Math.max(0, Math.min(radius, r.width / 2, r.height / 2) - t.w / 2));
      g.stroke();
    }
  } else {
    const strip = (x: { w: number; color: string }, rx: number, ry: number, rw: number, rh: number): void => {
      if (x.w <= 0 || transparent(x.color)) return;
      g.fillStyle = x.color;
      g.fillRect(rx, ry, rw, rh);
    };
    strip(t, r.left, r.top, r.width, t.w);
    strip(b, r.left, r.bottom - b.w, r.width, b.w);
    strip(l, r.left, r.top, l.w, r.height);
    strip(ri, r.right - ri.w, r.top, ri.w, r.height);
  }
  paintShadows(g, s.boxShadow, r);
}

function paintShadows(g: CanvasRenderingContext2D, shadow: string, r: DOMRect): void {
  if (!shadow || shadow === 'none') return;
  // Computed form: "rgb(1, 2, 3) 0px 0px 0px 1px[ inset], ..." (commas inside rgb() kept apart).
  for (const part of shadow.split(/,(?![^(]*\))/)) {
    const color = /^\s*(rgba?\([^)]*\)|#[0-9a-f]+|[a-z]+)/i.exec(part)?.[1];
    const [dx = 0, dy = 0, blur = 0, spread = 0] = [...part.matchAll(/(-?[\d.]+)px/g)].map((m) => Number(m[1]));
    if (!color || transparent(color) || blur !== 0) continue;
    g.fillStyle = color;
    if (/\binset\b/.test(part)) {
      // An inset shadow offset sideways is a bar along that edge (the pinned token's marker).
      if (dx > 0) g.fillRect(r.left, r.top, dx, r.height);
      if (dx < 0) g.fillRect(r.right + dx, r.top, -dx, r.height);
      if (dy > 0) g.fillRect(r.left, r.top, r.width, dy);
      if (dy < 0) g.fillRect(r.left, r.bottom + dy, r.width, -dy);
    } else if (spread > 0) {
      // A ring around the box (the selected head in the model view).
      g.strokeStyle = color;
      g.lineWidth = spread;
      g.strokeRect(r.left + dx - spread / 2, r.top + dy - spread / 2, r.width + spread, r.height + spread);
    }
  }
}

/** An absolutely placed ::before box with a background (the head view's token tints). */
function paintBefore(g: CanvasRenderingContext2D, e: Element, r: DOMRect, alpha: number): void {
  const p = getComputedStyle(e, '::before');
  if (p.content === 'none' || p.content === 'normal' || p.display === 'none' || p.position !== 'absolute' || transparent(p.backgroundColor)) return;
  const opacity = Number(p.opacity);
  const [top, right, bottom, left] = [p.top, p.right, p.bottom, p.left].map((v) => (v === 'auto' ? NaN : px(v)));
  if (!(opacity > 0) || [top, right, bottom, left].some(Number.isNaN)) return;
  const x = r.left + e.clientLeft + left;
  const y = r.top + e.clientTop + top;
  const w = e.clientWidth - left - right;
  const h = e.clientHeight - top - bottom;
  if (w <= 0 || h <= 0) return;
  g.save();
  g.globalAlpha = alpha * opacity;
  g.fillStyle = p.backgroundColor;
  g.beginPath();
  g.roundRect(x, y, w, h, Math.min(px(p.borderTopLeftRadius), w / 2, h / 2));
  g.fill();
  g.restore();
}

/** A text node where the browser laid it out: whole when it is one line, else word by word. */
function paintText(g: CanvasRenderingContext2D, node: Text, s: CSSStyleDeclaration): void {
  const text = node.data;
  if (!text.trim()) return;
  g.font = `${s.fontStyle} ${s.fontWeight} ${s.fontSize} ${s.fontFamily}`;
  g.fillStyle = s.color;
  g.textAlign = 'left';
  g.textBaseline = 'alphabetic';
  const range = document.createRange();
  range.selectNodeContents(node);
  const rects = range.getClientRects();
  if (rects.length === 1) {
    drawText(g, text, rects[0]);
    return;
  }
  for (const m of text.matchAll(/\S+/g)) {
    range.setStart(node, m.index);
    range.setEnd(node, m.index + m[0].length);
    const rect = range.getClientRects()[0];
    if (rect) drawText(g, m[0], rect);
  }
}

function drawText(g: CanvasRenderingContext2D, text: string, rect: DOMRect): void {
  if (rect.width === 0) return;
  const m = g.measureText(text);
  // A text range's box is the font's ascent + descent: the baseline sits the ascent below its top.
  const y = rect.top + (rect.height - m.fontBoundingBoxAscent - m.fontBoundingBoxDescent) / 2 + m.fontBoundingBoxAscent;
  g.fillText(text, rect.left, y);
}
