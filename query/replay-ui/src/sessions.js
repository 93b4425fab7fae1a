// The session list: the organization's sessions, newest first (the API's
// order), a page at a time through `nextCursor`.

import { apiJson } from './api.js';
import { el, formatDuration, formatTime, integrityBadge, plural } from './dom.js';

const PAGE_SIZE = 50;

/** Shows the list in `root`; `onError(error)` handles refusals. Returns {destroy}. */
export function openList(root, { onError }) {
  const abort = new AbortController();
  const list = el('ol', { class: 'sessions', 'aria-live': 'polite' });
  const more = el('button', { type: 'button', class: 'more', hidden: true }, 'Older sessions');
  const status = el('p', { class: 'status' }, 'Loading sessions…');
  root.replaceChildren(el('h1', {}, 'Sessions'), status, list, more);

  let cursor = null;
  async function loadPage() {
    more.disabled = true;
    const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
    if (cursor) query.set('cursor', cursor);
    try {
      const page = await apiJson(`/api/v1/sessions?${query}`, { signal: abort.signal });
      list.append(...page.sessions.map(sessionItem));
      cursor = page.nextCursor;
      more.hidden = !cursor;
      status.textContent = list.children.length === 0 ? 'No sessions recorded yet.' : '';
      status.hidden = list.children.length > 0;
    } catch (e) {
      if (e?.name === 'AbortError') return;
      status.hidden = false;
      status.textContent = '';
      onError(e);
    } finally {
      more.disabled = false;
    }
  }
  more.addEventListener('click', loadPage);
  loadPage();
  return { destroy: () => abort.abort() };
}

function sessionItem(row) {
  const windows = row.windows.length;
  return el(
    'li',
    {},
    el(
      'a',
      { class: 'session', href: `#/sessions/${encodeURIComponent(row.sessionId)}`, 'data-session-id': row.sessionId },
      el('span', { class: 'url', title: row.firstUrl ?? '' }, row.firstUrl ?? '(no URL)'),
      el('span', { class: 'when' }, el('time', { datetime: row.firstReceivedAt }, formatTime(row.firstReceivedAt))),
      el('span', { class: 'duration', title: 'Duration' }, formatDuration(row.durationMs)),
      el(
        'span',
        { class: 'counts' },
        plural(row.eventCount, 'event'),
        windows > 1 ? ` · ${windows} tabs` : '',
      ),
      integrityBadge(row),
      el('span', { class: 'agent', title: row.userAgent }, row.userAgent || '(no user agent)'),
    ),
  );
}
