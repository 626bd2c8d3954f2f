// Tiny DOM helpers. Text always goes in through textContent: tokens and words are untrusted
// (a token may be "<img src=x onerror=alert(1)>"), so nothing here ever parses HTML.

type Attrs = Record<string, string | number | boolean | undefined>;

export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: (Node | string | null | undefined)[]
): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    if (k === 'class') e.className = String(v);
    else if (k === 'text') e.textContent = String(v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(typeof c === 'string' ? document.createTextNode(c) : c);
  }
  return e;
}

export function clear(e: Element): void {
  while (e.firstChild) e.removeChild(e.firstChild);
}

/** Sets text only when it changed (avoids layout work on hover). */
export function setText(e: Element, text: string): void {
  if (e.textContent !== text) e.textContent = text;
}

/** Formats a weight for display: 3 significant decimals. */
export function fmtWeight(w: number): string {
  if (!(w > 0)) return '0';
  if (w >= 0.995) return w.toFixed(2);
  if (w >= 0.001) return w.toFixed(3).replace(/^0/, '');
  return w.toExponential(0);
}
