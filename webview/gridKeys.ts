// Arrow-key movement in a grid of cells (the model view's layers x heads, the matrix view's
// queries x keys), following the ARIA grid pattern. The head view is a two-column listbox whose
// Home/End and first-press rules differ, so it keeps its own.

export interface GridPos {
  r: number;
  c: number;
}

/**
 * Where a navigation key moves `at` in a rows x cols grid, clamped to its edges: arrows one cell,
 * PageUp/PageDown `page` rows (ignored when page is 0), Home/End to the row's first/last cell (with
 * Ctrl the grid's). null for any other key.
 */
export function gridMove(e: KeyboardEvent, at: GridPos, rows: number, cols: number, page = 0): GridPos | null {
  let { r, c } = at;
  switch (e.key) {
    case 'ArrowDown':
      r = Math.min(rows - 1, r + 1);
      break;
    case 'ArrowUp':
      r = Math.max(0, r - 1);
      break;
    case 'ArrowRight':
      c = Math.min(cols - 1, c + 1);
      break;
    case 'ArrowLeft':
      c = Math.max(0, c - 1);
      break;
    case 'PageDown':
      if (!page) return null;
      r = Math.min(rows - 1, r + page);
      break;
    case 'PageUp':
      if (!page) return null;
      r = Math.max(0, r - page);
      break;
    case 'Home':
      c = 0;
      if (e.ctrlKey) r = 0;
      break;
    case 'End':
      c = cols - 1;
      if (e.ctrlKey) r = rows - 1;
      break;
    default:
      return null;
  }
  return { r, c };
}

export function isArrowKey(key: string): boolean {
  return key === 'ArrowDown' || key === 'ArrowUp' || key === 'ArrowLeft' || key === 'ArrowRight';
}
