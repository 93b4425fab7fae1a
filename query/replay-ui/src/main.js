// The replay page (docs/design.md §7), served by lucent-query at `/`.
//
//   #/                      the session list
//   #/sessions/{id}         one session, its first window
//   #/sessions/{id}?window=W one session, window W
//
// The secret key is asked for first and kept in sessionStorage only. A 401
// clears it and asks again; other refusals are shown where the view was.

import { ApiError, secretKey } from './api.js';
import { el } from './dom.js';
import { openSession } from './player.js';
import { openList } from './sessions.js';

const view = document.getElementById('view');
const keyForm = document.getElementById('key-form');
const keyInput = document.getElementById('secret-key');
const keyPanel = document.getElementById('key-panel');
const keyMessage = document.getElementById('key-message');
const forget = document.getElementById('forget-key');
let current = null;

function route() {
  current?.destroy();
  current = null;
  if (!secretKey.get()) {
    askForKey(null);
    return;
  }
  keyPanel.hidden = true;
  forget.hidden = false;
  const match = /^#\/sessions\/([^/?]+)(?:\?window=([^&]*))?$/.exec(location.hash);
  const context = { onError: showError };
  if (match) {
    current = openSession(view, decodeURIComponent(match[1]), match[2] === undefined ? null : decodeURIComponent(match[2]), context);
  } else {
    current = openList(view, context);
  }
}

function askForKey(message) {
  view.replaceChildren();
  forget.hidden = true;
  keyPanel.hidden = false;
  keyMessage.textContent = message ?? '';
  keyMessage.hidden = !message;
  keyInput.value = '';
  keyInput.focus();
}

function showError(error) {
  if (error instanceof ApiError && error.kind === 'auth') {
    secretKey.clear();
    askForKey(error.message);
    return;
  }
  const text = error instanceof ApiError ? error.message : `Something went wrong: ${error?.message ?? error}`;
  const retry = el('button', { type: 'button' }, 'Try again');
  retry.addEventListener('click', route);
  view.append(el('div', { class: 'error', role: 'alert', 'data-kind': error?.kind ?? 'other' }, el('p', {}, text), retry));
}

keyForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const key = keyInput.value.trim();
  if (!key) return;
  try {
    secretKey.set(key);
  } catch {
    keyMessage.textContent = 'This browser refuses to keep the key (sessionStorage is unavailable).';
    keyMessage.hidden = false;
    return;
  }
  keyInput.value = '';
  route();
});

forget.addEventListener('click', () => {
  secretKey.clear();
  route();
});

window.addEventListener('hashchange', route);
route();
