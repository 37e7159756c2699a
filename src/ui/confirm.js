/** An inline confirmation: every change to the cluster asks first. */
import { html } from './lib/html.js';

export function Confirm({ text, onYes, onNo }) {
  return html`<div class="confirm" role="alertdialog" data-testid="confirm">
    <span>${text}</span>
    <button class="danger" data-testid="confirm-yes" onClick=${onYes}>Yes, do it</button>
    <button onClick=${onNo}>Cancel</button>
  </div>`;
}
