// Building the page's elements. Text only ever goes in through textContent
// (and attributes through setAttribute): no HTML is parsed from data, so a
// session's URL or user agent cannot become markup.

/**
 * `el('a', {href: '#/x', class: 'row'}, 'text', child…)`: an element with
 * these attributes (null/false ones left out) and children (strings become text).
 */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    node.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(typeof child === 'string' ? document.createTextNode(child) : child);
  }
  return node;
}

/** `1:05`, `1:02:03` for a number of milliseconds. */
export function formatDuration(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${s}` : `${m}:${s}`;
}

/** `1 event`, `2 events`. */
export function plural(n, word) {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/** A date-time in the viewer's locale, for an RFC 3339 string. */
export function formatTime(rfc3339) {
  const d = new Date(rfc3339);
  return Number.isNaN(d.getTime()) ? rfc3339 : d.toLocaleString();
}

const INTEGRITY = {
  complete: ['complete', 'Every batch of every window arrived, and there is a full snapshot.'],
  gaps: ['gaps', 'Some batches are missing: the replay may jump or show a wrong state.'],
  no_full_snapshot: ['no full snapshot', 'No full snapshot was received: this session cannot be played.'],
};

/** The integrity badge of a session row. */
export function integrityBadge(row) {
  const [label, title] = INTEGRITY[row.integrity] ?? [row.integrity, ''];
  let detail = title;
  if (row.integrity === 'gaps') {
    const missing = row.windows.reduce((n, w) => n + (w.missingCount ?? 0), 0);
    detail = `${missing} ${missing === 1 ? 'batch' : 'batches'} missing. ${title}`;
  }
  return el('span', { class: `badge badge-${row.integrity}`, title: detail }, label);
}
