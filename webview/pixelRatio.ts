// The device pixel ratio the views paint their canvases at: the screen's, or a higher one while an
// export repaints them for a sharper image (export/png.ts). The repaint, the capture and the
// repaint back happen in one task, so the screen never shows the export's ratio.

let exportRatio: number | null = null;

export function pixelRatio(): number {
  return exportRatio ?? (window.devicePixelRatio || 1);
}

/** Runs `fn` with the views painting at `ratio`. */
export function atPixelRatio<T>(ratio: number, fn: () => T): T {
  exportRatio = ratio;
  try {
    return fn();
  } finally {
    exportRatio = null;
  }
}
