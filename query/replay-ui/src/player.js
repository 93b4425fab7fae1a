// One session: its row, the window (tab) picker, and rrweb's Replayer with
// controls of our own (play/pause, seek, speed, skip inactivity).
//
// Events stream in (readJsonArray): the Replayer is built as soon as it has
// the Meta event and a full snapshot, and every later event is handed to it
// with addEvent, so playback can start before the last chunk arrives.
//
// The recording plays inside the iframe rrweb creates with
// `sandbox="allow-same-origin"` (no allow-scripts): nothing recorded can run,
// and the iframe inherits the page's CSP as a second wall.

import { Replayer } from 'rrweb';
import { apiGet, apiJson } from './api.js';
import { el, formatDuration, formatTime, integrityBadge, plural } from './dom.js';
import { readJsonArray } from './json_stream.js';

const FULL_SNAPSHOT = 2;
const SPEEDS = [1, 2, 4, 8];

/**
 * Shows session `id` in `root`, window `windowId` (null: the tab opened first).
 * `onError(error)` handles refusals. Returns {destroy}.
 */
export function openSession(root, id, windowId, { onError }) {
  const abort = new AbortController();
  let player = null;
  const status = el('p', { class: 'status', role: 'status' }, 'Loading the session…');
  root.replaceChildren(el('p', { class: 'back' }, el('a', { href: '#/' }, '← All sessions')), status);

  (async () => {
    const path = `/api/v1/sessions/${encodeURIComponent(id)}`;
    const row = await apiJson(path, { signal: abort.signal });
    const tabs = tabsInOpeningOrder(row.windows);
    const windows = tabs.map((w) => w.windowId);
    const chosen = windowId !== null && windows.includes(windowId) ? windowId : windows[0] ?? null;
    root.replaceChildren(root.firstChild, sessionHeader(row, tabs, chosen), status);
    if (row.integrity === 'no_full_snapshot') {
      status.textContent = 'This session has no full snapshot: it cannot be played.';
      return;
    }
    player = new Player(root, status);
    // With one window, the merged stream is that window: no parameter needed.
    const query = windows.length > 1 ? `?windowId=${encodeURIComponent(chosen)}` : '';
    const response = await apiGet(`${path}/events${query}`, { signal: abort.signal });
    await player.load(response.body);
  })().catch((e) => {
    if (e?.name === 'AbortError') return;
    if (player?.started) {
      // Playable up to where the stream stopped: say so, keep the player.
      status.textContent = `The events stopped arriving (${e.message}); playing the ${player.count} events received.`;
      status.classList.add('error');
      return;
    }
    status.textContent = '';
    onError(e);
  });

  return {
    destroy() {
      abort.abort();
      player?.destroy();
    },
  };
}

/** The windows by their earliest event (ties by id): tabs in the order they were opened. */
function tabsInOpeningOrder(windows) {
  const key = (w) => [Date.parse(w.startedAt) || 0, w.windowId];
  return [...windows].sort((a, b) => {
    const [ta, ia] = key(a);
    const [tb, ib] = key(b);
    return ta - tb || (ia < ib ? -1 : ia > ib ? 1 : 0);
  });
}

/** The time of day a tab was opened (the session's date is in its header). */
function openedAt(rfc3339) {
  const d = new Date(rfc3339);
  return Number.isNaN(d.getTime()) ? rfc3339 : d.toLocaleTimeString();
}

function sessionHeader(row, tabs, chosen) {
  const header = el(
    'section',
    { class: 'session-info' },
    el('h1', { class: 'url', title: row.firstUrl ?? '' }, row.firstUrl ?? '(no URL)'),
    el(
      'p',
      { class: 'facts' },
      integrityBadge(row),
      ` ${formatDuration(row.durationMs)} · ${plural(row.eventCount, 'event')} · started ${formatTime(row.startedAt)}`,
    ),
    el('p', { class: 'agent', title: row.userAgent }, row.userAgent),
  );
  if (tabs.length > 1) {
    const select = el(
      'select',
      { id: 'window-picker', name: 'window' },
      tabs.map((w, i) =>
        el(
          'option',
          { value: w.windowId, selected: w.windowId === chosen },
          `Tab ${i + 1}, opened ${openedAt(w.startedAt)} (${w.batches} batch${w.batches === 1 ? '' : 'es'})`,
        ),
      ),
    );
    select.addEventListener('change', () => {
      location.hash = `#/sessions/${encodeURIComponent(row.sessionId)}?window=${encodeURIComponent(select.value)}`;
    });
    header.append(
      el('p', { class: 'window-choice' }, el('label', { for: 'window-picker' }, `Recorded in ${tabs.length} tabs: `), select),
    );
  }
  return header;
}

/** The Replayer, its stage and its controls. */
class Player {
  constructor(root, status) {
    this.status = status;
    this.state = 'loading';
    /** The recording could not be rebuilt: nothing more is fed to rrweb. */
    this.broken = false;
    this.replayer = null;
    this.buffered = [];
    this.count = 0;
    this.dragging = false;
    this.stage = el('div', { class: 'stage', id: 'stage' });
    this.viewport = el('div', { class: 'viewport' }, this.stage);
    this.playButton = el('button', { type: 'button', id: 'play', class: 'play', disabled: true }, 'Play');
    this.seek = el('input', {
      type: 'range', id: 'seek', min: '0', max: '0', step: '1', value: '0', disabled: true, 'aria-label': 'Position',
    });
    this.time = el('span', { class: 'time', id: 'time' }, '0:00 / 0:00');
    this.speed = el(
      'select',
      { id: 'speed', 'aria-label': 'Speed' },
      SPEEDS.map((s) => el('option', { value: String(s) }, `${s}×`)),
    );
    this.skip = el('input', { type: 'checkbox', id: 'skip-inactive', checked: true });
    /** Shown while rrweb fast-forwards through a stretch without user activity. */
    this.skipping = el('span', { class: 'skipping', id: 'skipping', role: 'status', hidden: true });
    this.controls = el(
      'div',
      { class: 'controls' },
      this.playButton,
      this.seek,
      this.time,
      this.speed,
      el('label', { class: 'skip' }, this.skip, ' Skip inactivity'),
      this.skipping,
    );
    this.element = el(
      'section',
      { class: 'player', id: 'player', 'data-state': 'loading', 'data-events': '0', 'data-skips': '0' },
      this.viewport,
      this.controls,
    );
    root.append(this.element);

    this.playButton.addEventListener('click', () => this.toggle());
    this.seek.addEventListener('input', () => {
      this.dragging = true;
      this.showTime(Number(this.seek.value));
    });
    this.seek.addEventListener('change', () => {
      this.dragging = false;
      this.goTo(Number(this.seek.value));
    });
    this.speed.addEventListener('change', () => this.replayer?.setConfig({ speed: Number(this.speed.value) }));
    this.skip.addEventListener('change', () => this.replayer?.setConfig({ skipInactive: this.skip.checked }));
    this.onResize = () => this.fit();
    window.addEventListener('resize', this.onResize);
    this.ticker = setInterval(() => this.tick(), 100);
  }

  get started() {
    return this.replayer !== null;
  }

  /** Streams the events body into the Replayer. */
  async load(body) {
    this.status.textContent = 'Loading events…';
    this.element.dataset.stream = 'streaming';
    const total = await readJsonArray(body, (events) => this.add(events));
    this.element.dataset.stream = 'done';
    // Waiting for events that will not come: finished. After any resume the
    // last piece queued (same kind of task, so it runs first).
    setTimeout(() => this.state === 'buffering' && this.setState('finished'), 0);
    if (this.broken) return;
    if (!this.replayer) {
      this.status.textContent =
        total === 0 ? 'This window recorded no events.' : 'This window has no full snapshot: it cannot be played.';
      this.status.classList.add('error');
      return;
    }
    this.status.textContent = `${total} events loaded.`;
    this.tick();
  }

  add(events) {
    this.count += events.length;
    this.element.dataset.events = String(this.count);
    if (this.replayer) {
      for (const event of events) this.replayer.addEvent(event);
      this.status.textContent = `Loading events… ${this.count} so far (you can play already).`;
      if (this.state === 'buffering') {
        // addEvent hands the events over in a microtask: resume after it.
        setTimeout(() => {
          if (this.state !== 'buffering') return;
          this.replayer.play(this.resumeAt);
          this.setState('playing');
        }, 0);
      }
      return;
    }
    if (this.broken) return;
    this.buffered.push(...events);
    if (this.buffered.length >= 2 && this.buffered.some((e) => e.type === FULL_SNAPSHOT)) {
      try {
        this.start();
      } catch (e) {
        // A snapshot rrweb cannot rebuild (hand-made, or from another version).
        this.broken = true;
        this.replayer = null;
        this.stage.replaceChildren();
        this.buffered = [];
        this.status.textContent = `This recording cannot be played: ${e?.message ?? e}`;
        this.status.classList.add('error');
        this.element.dataset.state = 'broken';
      }
    }
  }

  start() {
    // The earliest position worth showing: just after the first full
    // snapshot. rrweb applies at once only the events strictly before the
    // position; at an earlier one (the Meta event comes a few milliseconds
    // before the snapshot), pausing would leave the previous DOM in place.
    const first = Math.min(...this.buffered.map((e) => e.timestamp));
    const snapshot = Math.min(...this.buffered.filter((e) => e.type === FULL_SNAPSHOT).map((e) => e.timestamp));
    this.startOffset = Math.max(0, snapshot - first) + 1;
    this.replayer = new Replayer(this.buffered, {
      root: this.stage,
      speed: Number(this.speed.value),
      skipInactive: this.skip.checked,
      showWarning: false,
      mouseTail: false,
      triggerFocus: false,
      pauseAnimation: true,
      // Recorded canvases would need scripts in the iframe: never.
      UNSAFE_replayCanvas: false,
    });
    this.buffered = [];
    this.replayer.on('resize', () => this.fit());
    // rrweb decides to skip when it plays the last event before a long quiet
    // stretch (with skipInactive on), and ends the skip at the next user action.
    this.replayer.on('skip-start', ({ speed }) => {
      this.element.dataset.skips = String(Number(this.element.dataset.skips) + 1);
      this.element.dataset.skipping = 'true';
      this.skipping.textContent = `Skipping inactivity (${speed}×)…`;
      this.skipping.hidden = false;
    });
    this.replayer.on('skip-end', () => {
      delete this.element.dataset.skipping;
      this.skipping.hidden = true;
    });
    this.replayer.on('finish', () => {
      if (this.element.dataset.stream === 'streaming') {
        // Played everything received so far: wait for more, then go on.
        this.resumeAt = this.replayer.getMetaData().totalTime;
        this.setState('buffering');
      } else {
        this.setState('finished');
      }
    });
    this.replayer.pause(this.startOffset);
    this.playButton.disabled = false;
    this.seek.disabled = false;
    this.setState('ready');
    this.fit();
  }

  toggle() {
    if (!this.replayer) return;
    if (this.state === 'playing' || this.state === 'buffering') {
      this.replayer.pause();
      this.setState('paused');
    } else {
      const { totalTime } = this.replayer.getMetaData();
      const at = this.state === 'finished' || this.replayer.getCurrentTime() >= totalTime ? 0 : this.replayer.getCurrentTime();
      this.replayer.play(at);
      this.setState('playing');
    }
  }

  goTo(position) {
    if (!this.replayer) return;
    const ms = Math.max(position, this.startOffset);
    if (this.state === 'playing' || this.state === 'buffering') {
      this.replayer.play(ms);
      this.setState('playing');
    } else {
      this.replayer.pause(ms);
      this.setState('paused');
    }
    this.tick();
  }

  setState(state) {
    this.state = state;
    this.element.dataset.state = state;
    this.playButton.textContent = state === 'playing' || state === 'buffering' ? 'Pause' : state === 'finished' ? 'Replay' : 'Play';
    this.tick();
  }

  tick() {
    if (!this.replayer) return;
    const { totalTime } = this.replayer.getMetaData();
    this.seek.max = String(Math.max(0, Math.round(totalTime)));
    if (!this.dragging) {
      const now = this.state === 'finished' ? totalTime : Math.min(this.replayer.getCurrentTime(), totalTime);
      this.seek.value = String(Math.round(now));
      this.showTime(now);
    }
  }

  showTime(ms) {
    const { totalTime } = this.replayer.getMetaData();
    this.time.textContent = `${formatDuration(ms)} / ${formatDuration(totalTime)}`;
  }

  /** Scales the recorded viewport to the width available (never above 1:1). */
  fit() {
    const wrapper = this.replayer?.wrapper;
    const iframe = this.replayer?.iframe;
    if (!wrapper || !iframe) return;
    const width = Number(iframe.width) || iframe.offsetWidth;
    const height = Number(iframe.height) || iframe.offsetHeight;
    if (!width || !height) return;
    // At most what fits above the controls in the window, so that both show at once.
    const top = this.viewport.getBoundingClientRect().top + window.scrollY;
    const maxHeight = Math.max(200, window.innerHeight - top - this.controls.offsetHeight - 24);
    const scale = Math.min(1, this.viewport.clientWidth / width, maxHeight / height);
    // CSSOM, not a style attribute: allowed under `style-src 'self'`.
    wrapper.style.transform = `scale(${scale})`;
    this.stage.style.width = `${Math.floor(width * scale)}px`;
    this.stage.style.height = `${Math.floor(height * scale)}px`;
  }

  destroy() {
    clearInterval(this.ticker);
    window.removeEventListener('resize', this.onResize);
    try {
      this.replayer?.destroy();
    } catch {
      // Already torn down with the page.
    }
  }
}
