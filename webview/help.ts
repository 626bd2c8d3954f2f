// The keyboard-shortcut help: a modal dialog listing every key the panel handles (keys.ts, the
// views' own key handlers: views/model.ts, views/head.ts, views/matrix.ts, gridKeys.ts, the
// Export menu's, export/menu.ts, and Why this weight?'s, views/explain.ts). Opened by `?` or the
// header's "?" button; Escape or `?` closes it, focus stays inside while it is open and goes back
// where it was when it closes.

import { el } from './dom';

/** A row: the keys (each alternative a list of keys pressed together) and what they do. */
interface HelpRow {
  keys: string[][];
  action: string;
}

interface HelpSection {
  title: string;
  rows: HelpRow[];
}

const k = (...alternatives: string[]): string[][] => alternatives.map((a) => a.split('+'));

/** Every key the panel handles, by where it works. Keep in step with the key handlers named above. */
export const HELP_SECTIONS: readonly HelpSection[] = [
  {
    title: 'Anywhere in the panel',
    rows: [
      { keys: k('?'), action: 'Show or hide these shortcuts' },
      { keys: k('1', '2', '3'), action: 'Model, Heads or Matrix view' },
      { keys: k('[', ']'), action: 'Previous or next layer' },
      { keys: k(',', '.'), action: 'Previous or next head (mean of heads, rollout, head 1, 2, …)' },
      { keys: k('V'), action: 'Attention or value-weighted attention (‖α·v·W_O‖)' },
      { keys: k('Esc'), action: 'Clear the hovered or pinned token' },
      // Written out: k() splits on '+'.
      { keys: [['+'], ['−']], action: 'A long input (its Heads and Matrix views show a window of it): zoom the window in or out (64, 128 or 256 tokens)' },
      { keys: k('PgUp', 'PgDn'), action: 'A long input: its window half a window earlier or later (in the views too; an arrow past the window’s edge moves it as well)' },
    ],
  },
  {
    title: 'View tabs',
    rows: [
      { keys: k('←', '→'), action: 'Previous or next view' },
      { keys: k('Home', 'End'), action: 'First or last view' },
    ],
  },
  {
    title: 'Model view (the grid of heads)',
    rows: [
      { keys: k('←', '→', '↑', '↓'), action: 'Move between heads and layers' },
      { keys: k('Home', 'End'), action: "First or last head of the layer" },
      { keys: k('Ctrl+Home', 'Ctrl+End'), action: 'First or last head of the model' },
      { keys: k('Enter', 'Space'), action: 'Open the head in the Matrix view' },
    ],
  },
  {
    title: 'Heads view (the token lists)',
    rows: [
      { keys: k('↑', '↓'), action: 'Previous or next token' },
      { keys: k('PgUp', 'PgDn'), action: 'A page of tokens up or down (a window: half a window)' },
      { keys: k('Home', 'End'), action: 'First or last token' },
      { keys: k('←', '→'), action: 'Queries (attending) or keys (attended to)' },
      { keys: k('Enter', 'Space'), action: 'Pin or unpin the token' },
      { keys: k('Esc'), action: 'Clear the token' },
    ],
  },
  {
    title: 'Matrix view',
    rows: [
      { keys: k('←', '→', '↑', '↓'), action: 'Move the cell (the first press shows it, top left)' },
      { keys: k('PgUp', 'PgDn'), action: 'Ten rows up or down (a window: half a window)' },
      { keys: k('Home', 'End'), action: 'First or last cell of the row' },
      { keys: k('Ctrl+Home', 'Ctrl+End'), action: 'First or last cell of the matrix' },
      { keys: k('Enter', 'Space'), action: "Pin or unpin the row's token" },
      { keys: k('W'), action: 'Why this weight? for the cell (or double-click it)' },
      { keys: k('Esc'), action: 'Clear the cell' },
    ],
  },
  {
    title: 'Why this weight? (Why? beside a top word, a double click in the matrix)',
    rows: [
      { keys: k('←', '→'), action: 'Previous or next key of the row' },
      { keys: k('Home', 'End'), action: 'First or last key' },
      { keys: k('Esc'), action: 'Close it' },
    ],
  },
  {
    title: 'Export menu (header)',
    rows: [
      { keys: k('Enter', 'Space', '↓', '↑'), action: 'Open it on the first (↑: last) export' },
      { keys: k('↑', '↓', 'Home', 'End'), action: 'Move between exports' },
      { keys: k('Enter', 'Space'), action: 'Export (the host asks where to save)' },
      { keys: k('Esc'), action: 'Close it' },
    ],
  },
];

/** Screen-reader names for keys drawn as symbols. */
const KEY_NAMES: Record<string, string> = { '←': 'Left arrow', '→': 'Right arrow', '↑': 'Up arrow', '↓': 'Down arrow', Esc: 'Escape', PgUp: 'Page Up', PgDn: 'Page Down', '[': 'left bracket', ']': 'right bracket', ',': 'comma', '.': 'period', '?': 'question mark', '+': 'plus', '−': 'minus' };

function keysCell(keys: string[][]): HTMLElement {
  const cell = el('th', { scope: 'row', class: 'help-keys' });
  keys.forEach((combo, i) => {
    if (i > 0) cell.append(' ', el('span', { class: 'sr-only', text: 'or ' }));
    const keysPressed = el('span', { class: 'help-combo' });
    combo.forEach((key, j) => {
      if (j > 0) keysPressed.append('+');
      const name = KEY_NAMES[key];
      // A symbol is read out by its name instead.
      keysPressed.append(el('kbd', { text: key, title: name, 'aria-hidden': name ? 'true' : undefined }));
      if (name) keysPressed.append(el('span', { class: 'sr-only', text: name }));
    });
    cell.append(keysPressed);
  });
  return cell;
}

export class HelpDialog {
  readonly root: HTMLDialogElement;
  private readonly closeButton: HTMLButtonElement;
  private readonly body: HTMLElement;
  /** Where focus was before the dialog opened. */
  private returnTo: HTMLElement | null = null;

  constructor() {
    this.closeButton = el('button', { type: 'button', class: 'help-close', 'aria-label': 'Close keyboard shortcuts', title: 'Close (Esc)', text: '×' });
    this.body = el('div', { class: 'help-body', tabindex: 0, role: 'region', 'aria-label': 'Shortcuts' });
    HELP_SECTIONS.forEach((s, i) => {
      const id = `help-section-${i}`;
      const table = el('table', { class: 'help-table', 'aria-labelledby': id });
      for (const row of s.rows) table.append(el('tr', {}, keysCell(row.keys), el('td', { text: row.action })));
      this.body.append(el('section', { class: 'help-section' }, el('h3', { id, text: s.title }), table));
    });
    this.body.append(el('p', { class: 'help-note', text: 'Keys act when no control (a select, the slider) has focus. Hover a token with the mouse to see what it attends to.' }));
    this.root = el(
      'dialog',
      { class: 'help', id: 'help', role: 'dialog', 'aria-modal': 'true', 'aria-labelledby': 'help-title' },
      el('div', { class: 'help-head' }, el('h2', { id: 'help-title', class: 'help-title', text: 'Keyboard shortcuts' }), this.closeButton),
      this.body,
    );
    this.closeButton.addEventListener('click', () => this.close());
    this.root.addEventListener('keydown', (e) => this.onKey(e));
    // Escape as the browser's own close request: close our way (focus goes back).
    this.root.addEventListener('cancel', (e) => {
      e.preventDefault();
      this.close();
    });
    // A click on the backdrop (outside the dialog's box) closes it.
    this.root.addEventListener('click', (e) => {
      if (e.target !== this.root) return;
      const r = this.root.getBoundingClientRect();
      if (e.clientX < r.left || e.clientX > r.right || e.clientY < r.top || e.clientY > r.bottom) this.close();
    });
  }

  get isOpen(): boolean {
    return this.root.open;
  }

  toggle(): void {
    if (this.isOpen) this.close();
    else this.open();
  }

  open(): void {
    if (this.isOpen) return;
    const active = document.activeElement;
    this.returnTo = active instanceof HTMLElement && active !== document.body ? active : null;
    this.root.showModal();
    this.body.scrollTop = 0;
    this.closeButton.focus();
  }

  close(): void {
    if (!this.isOpen) return;
    this.root.close();
    const back = this.returnTo;
    this.returnTo = null;
    if (back?.isConnected) back.focus();
  }

  private onKey(e: KeyboardEvent): void {
    if (e.key === 'Escape' || (e.key === '?' && !e.ctrlKey && !e.metaKey && !e.altKey)) {
      e.preventDefault();
      e.stopPropagation();
      this.close();
      return;
    }
    if (e.key === 'Tab') {
      // Focus stays in the dialog: Tab and Shift+Tab cycle through its focusable parts.
      const stops = [this.closeButton, this.body];
      const i = stops.indexOf(document.activeElement as HTMLElement);
      const next = e.shiftKey ? (i <= 0 ? stops.length - 1 : i - 1) : (i + 1) % stops.length;
      e.preventDefault();
      stops[next].focus();
    }
  }
}
