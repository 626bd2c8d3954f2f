// The header's Export menu (the ARIA menu button pattern): a button that opens a list of exports.
// Enter, Space or the arrows open it; in it, the arrows, Home and End move, Enter or Space
// chooses, Escape closes it and Tab leaves it. The host does the exporting (it owns the save
// dialog): the menu only reports the choice.

import type { ExportMenuMessage } from '../../src/protocol/webview';
import { el } from '../dom';

export type ExportChoice = Omit<ExportMenuMessage, 'type'>;

interface Item {
  choice: ExportChoice;
  label: string;
  /** Why the item does nothing for the view on screen, or null. */
  unavailable?: () => string | null;
}

export class ExportMenu {
  readonly root: HTMLElement;
  readonly button: HTMLButtonElement;
  private readonly menu: HTMLElement;
  private readonly items: { item: Item; el: HTMLButtonElement }[] = [];

  constructor(
    private readonly choose: (choice: ExportChoice) => void,
    svgUnavailable: () => string | null,
  ) {
    this.button = el('button', {
      type: 'button',
      class: 'export-button',
      id: 'export-button',
      'aria-haspopup': 'menu',
      'aria-expanded': 'false',
      'aria-controls': 'export-menu',
      title: 'Export what the panel shows',
      text: 'Export',
    });
    this.menu = el('div', { class: 'export-menu', id: 'export-menu', role: 'menu', 'aria-labelledby': 'export-button', hidden: true });
    const items: Item[] = [
      { choice: { action: 'png', scale: 1 }, label: 'PNG image…' },
      { choice: { action: 'png', scale: 2 }, label: 'PNG image at 2×…' },
      { choice: { action: 'svg' }, label: 'SVG image…', unavailable: svgUnavailable },
      { choice: { action: 'html' }, label: 'HTML report…' },
      { choice: { action: 'data' }, label: 'Data (.npy + .json)…' },
    ];
    for (const item of items) {
      const b = el('button', { type: 'button', class: 'export-item', role: 'menuitem', tabindex: -1, 'data-action': item.choice.action, 'data-scale': item.choice.scale, text: item.label });
      b.addEventListener('click', () => this.pick(item, b));
      this.menu.append(b);
      this.items.push({ item, el: b });
    }
    this.root = el('div', { class: 'export-wrap' }, this.button, this.menu);

    this.button.addEventListener('click', () => (this.isOpen ? this.close(true) : this.open(0)));
    this.button.addEventListener('keydown', (e) => {
      if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
        e.preventDefault();
        this.open(e.key === 'ArrowDown' ? 0 : this.items.length - 1);
      }
    });
    this.menu.addEventListener('keydown', (e) => this.onKey(e));
    // A click elsewhere, or focus leaving the menu (Tab), closes it.
    document.addEventListener('pointerdown', (e) => {
      if (this.isOpen && !this.root.contains(e.target as Node)) this.close(false);
    });
    this.root.addEventListener('focusout', (e) => {
      if (this.isOpen && !this.root.contains(e.relatedTarget as Node | null)) this.close(false);
    });
  }

  get isOpen(): boolean {
    return !this.menu.hidden;
  }

  private open(focus: number): void {
    for (const { item, el: b } of this.items) {
      const why = item.unavailable?.() ?? null;
      if (why) {
        b.setAttribute('aria-disabled', 'true');
        b.title = why;
      } else {
        b.removeAttribute('aria-disabled');
        b.removeAttribute('title');
      }
    }
    this.menu.hidden = false;
    this.button.setAttribute('aria-expanded', 'true');
    this.items[focus].el.focus();
  }

  private close(refocus: boolean): void {
    this.menu.hidden = true;
    this.button.setAttribute('aria-expanded', 'false');
    if (refocus) this.button.focus();
  }

  private pick(item: Item, b: HTMLButtonElement): void {
    // Unavailable items stay in the list (and say why in their tooltip), but do nothing.
    if (b.getAttribute('aria-disabled') === 'true') return;
    this.close(true);
    this.choose(item.choice);
  }

  private onKey(e: KeyboardEvent): void {
    const i = this.items.findIndex((x) => x.el === document.activeElement);
    const n = this.items.length;
    let next = -1;
    switch (e.key) {
      case 'ArrowDown':
        next = (i + 1) % n;
        break;
      case 'ArrowUp':
        next = (i + n - 1) % n;
        break;
      case 'Home':
        next = 0;
        break;
      case 'End':
        next = n - 1;
        break;
      case 'Escape':
        this.close(true);
        break;
      case 'Enter':
      case ' ':
        if (i >= 0) this.pick(this.items[i].item, this.items[i].el);
        break;
      case 'Tab':
        return; // focus moves on, and focusout closes the menu
      default:
        // The panel's shortcut keys (1 2 3, [ ], ...) do not act behind an open menu.
        e.stopPropagation();
        return;
    }
    e.preventDefault();
    e.stopPropagation();
    if (next >= 0) this.items[next].el.focus();
  }
}
