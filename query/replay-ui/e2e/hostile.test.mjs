// Hostile recordings are safe to watch. Two sessions full of script:
//   - recorded: e2e/hostile.html, recorded by the SDK in Chromium: an inline
//     <script>, <img onerror>, javascript: links and form action, onclick,
//     <svg onload>, and, added after the snapshot, a <script>, an <img
//     onerror> and an <iframe srcdoc> with a script;
//   - crafted: a batch posted straight to the ingest (anyone with a public key
//     can), whose full snapshot and mutations carry real script text in
//     <script>, on* attributes, javascript: URLs and srcdoc, which the SDK
//     would have replaced.
// Every payload reports itself by appending to top.__pwned and requesting
// /pwned/NAME. On the recorded page itself they run (the control: the
// payloads work); on the replay page, played to the end, with every link,
// form and handler inside rrweb's iframe clicked, submitted and fired, none
// does: no /pwned/ request leaves the browser, top.__pwned stays unset, and
// the iframe is sandboxed without allow-scripts.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { waitFor } from '../../../sdk/e2e/harness.mjs';
import { openReplayPage, playToEnd, screenshot, withPipeline } from './stack.mjs';

const ORG = 'hostile-e2e';
const CRAFTED = 'hostile-crafted';

/** A payload reporting itself as `name`, self-contained (a replay has no helpers). */
const payload = (name) => `(top.__pwned = top.__pwned || []).push('${name}'); fetch('/pwned/${name}').catch(function () {})`;

/** A recording no SDK would send: script text, handlers and javascript: URLs everywhere. */
function craftedEvents(now) {
  const text = (id, textContent) => ({ type: 3, id, textContent });
  const elem = (id, tagName, attributes, childNodes = []) => ({ type: 2, id, tagName, attributes, childNodes });
  const snapshot = {
    type: 0,
    id: 1,
    childNodes: [
      { type: 1, id: 2, name: 'html', publicId: '', systemId: '' },
      elem(3, 'html', {}, [
        elem(4, 'head', {}, [
          elem(5, 'script', {}, [text(6, payload('crafted-head-script'))]),
          elem(7, 'meta', { 'http-equiv': 'refresh', content: `0;url=javascript:${payload('crafted-meta-refresh')}` }),
          elem(8, 'base', { href: 'javascript:void 0' }),
        ]),
        elem(9, 'body', { onload: payload('crafted-body-onload') }, [
          elem(10, 'h1', { id: 'title' }, [text(11, 'Crafted hostile session')]),
          elem(12, 'script', {}, [text(13, payload('crafted-body-script'))]),
          elem(14, 'img', { id: 'bad-img', src: 'data:,not-an-image', onerror: payload('crafted-img-onerror') }),
          elem(15, 'a', { id: 'js-link', href: `javascript:${payload('crafted-js-link')}` }, [text(16, 'link')]),
          elem(17, 'iframe', { srcdoc: `<script>${payload('crafted-srcdoc')}</script>` }),
          elem(18, 'div', { id: 'click-me', onclick: payload('crafted-onclick') }, [text(19, 'click')]),
          elem(20, 'svg', { onload: payload('crafted-svg-onload') }),
          elem(21, 'object', { data: `javascript:${payload('crafted-object')}` }),
        ]),
      ]),
    ],
  };
  return [
    { type: 4, timestamp: now, data: { href: 'https://evil.test/', width: 1024, height: 640 } },
    { type: 2, timestamp: now + 1, data: { node: snapshot, initialOffset: { left: 0, top: 0 } } },
    {
      type: 3,
      timestamp: now + 500,
      data: {
        source: 0,
        // A mutation adds each node on its own, children after their parent.
        adds: [
          { parentId: 9, nextId: null, node: elem(30, 'script', {}) },
          { parentId: 30, nextId: null, node: text(31, payload('crafted-added-script')) },
          { parentId: 9, nextId: null, node: elem(32, 'img', { src: 'data:,x', onerror: payload('crafted-added-img') }) },
          { parentId: 9, nextId: null, node: elem(33, 'p', { id: 'done' }) },
          { parentId: 33, nextId: null, node: text(34, 'payloads added') },
        ],
        removes: [],
        texts: [],
        attributes: [{ id: 14, attributes: { onerror: payload('crafted-changed-onerror'), src: 'data:,still-not-an-image' } }],
      },
    },
    { type: 3, timestamp: now + 1000, data: { source: 1, positions: [{ x: 10, y: 10, id: 18, timeOffset: 0 }] } },
  ];
}

/** In the replay's frame: fires everything that could run a payload. */
function provoke() {
  for (const a of document.querySelectorAll('a')) a.click();
  for (const el of document.querySelectorAll('[onclick]')) el.click();
  for (const img of document.querySelectorAll('img')) img.dispatchEvent(new Event('error'));
  for (const svg of document.querySelectorAll('svg')) svg.dispatchEvent(new Event('load'));
  document.body.dispatchEvent(new Event('load'));
  for (const form of document.querySelectorAll('form')) {
    try {
      form.requestSubmit();
    } catch {
      // A form the sandbox refuses to submit.
    }
  }
  return {
    pwned: window.__pwned ?? null,
    sandbox: window.frameElement?.getAttribute('sandbox') ?? null,
    scripts: document.querySelectorAll('script').length,
    handlers: document.querySelectorAll('[onerror], [onclick], [onload]').length,
    jsUrls: [...document.querySelectorAll('[href], [action], [data]')].filter((e) =>
      /^\s*javascript:/i.test(e.getAttribute('href') ?? e.getAttribute('action') ?? e.getAttribute('data') ?? ''),
    ).length,
    text: document.body?.textContent ?? '',
  };
}

test('hostile recordings: no recorded script runs on the replay page', { timeout: 180_000 }, async (t) => {
  await withPipeline(t, ORG, {}, async (stack, browser) => {
    // ---- the control: on the page itself, the payloads run -------------------------
    const recording = await browser.newContext({ viewport: { width: 1024, height: 640 } });
    const recordedHits = [];
    recording.on('request', (r) => r.url().includes('/pwned/') && recordedHits.push(new URL(r.url()).pathname));
    const page = await recording.newPage();
    await page.goto(`${stack.pagesUrl}/query/replay-ui/e2e/hostile.html?endpoint=${encodeURIComponent(stack.ingestUrl)}&key=${stack.publicKey}`);
    await page.locator('#done', { hasText: 'payloads added' }).waitFor();
    await page.locator('#js-link').click();
    await page.locator('#click-me').click();
    const sessionId = await page.evaluate(() => window.lucent.sessionId);
    const ranOnPage = await page.evaluate(() => window.__pwned);
    for (const name of ['inline-script', 'img-onerror', 'js-link', 'onclick', 'svg-onload', 'dynamic-script', 'dynamic-img', 'srcdoc']) {
      assert.ok(ranOnPage.includes(name), `control: ${name} runs on the hostile page itself (ran: ${ranOnPage})`);
    }
    await waitFor(() => recordedHits.length >= 3, { timeoutMs: 5000, message: 'control: the payloads request /pwned/ on the page itself' });
    t.diagnostic(`on the hostile page itself, ran: ${ranOnPage.join(', ')}`);

    // The crafted session, straight to the ingest.
    const posted = await fetch(`${stack.ingestUrl}/api/sdk/replay`, {
      method: 'POST',
      headers: { 'X-Lucent-Api-Key': stack.publicKey, 'Content-Type': 'application/json' },
      body: JSON.stringify({ sessionId: CRAFTED, seq: 0, events: craftedEvents(Date.now()), metadata: { url: 'https://evil.test/' } }),
    });
    assert.equal(posted.status, 202, 'the ingest accepts the crafted batch');

    const stored = async (id, marker) => {
      const res = await fetch(`${stack.queryUrl}/api/v1/sessions/${encodeURIComponent(id)}/events`, { headers: { Authorization: `Bearer ${stack.readKey}` } });
      return res.status === 200 && (await res.text()).includes(marker);
    };
    await waitFor(async () => (await stored(sessionId, 'payloads added')) && (await stored(CRAFTED, 'payloads added')), {
      timeoutMs: 30_000,
      everyMs: 250,
      message: () => `the hostile sessions were not stored within 30 s\n${stack.logs()}`,
    });
    await recording.close();

    // ---- the replay page -------------------------------------------------------------
    const viewing = await browser.newContext({ viewport: { width: 1280, height: 720 } });
    const replayHits = [];
    const blocked = [];
    viewing.on('request', (r) => r.url().includes('/pwned/') && replayHits.push(r.url()));
    const { page: replay } = await openReplayPage(viewing, stack);
    replay.on('console', (m) => /sandboxed|Content Security Policy/.test(m.text()) && blocked.push(m.text()));
    const dialogs = [];
    replay.on('dialog', (d) => {
      dialogs.push(d.message());
      d.dismiss().catch(() => {});
    });
    replay.on('popup', (p) => dialogs.push(`popup ${p.url()}`));

    for (const [name, id] of [
      ['recorded', sessionId],
      ['crafted', CRAFTED],
    ]) {
      await t.test(`${name} session: played and provoked, nothing runs`, async () => {
        const frame = await playToEnd(replay, id);
        assert.match(await frame.locator('body').textContent(), /payloads added/, 'the replay reached the end');
        const iframe = replay.frames().find((f) => f !== replay.mainFrame() && f.parentFrame() === replay.mainFrame());
        const seen = await iframe.evaluate(provoke);
        await replay.waitForTimeout(1000);
        // What ran first (the proof), then why nothing could.
        assert.equal(seen.pwned, null, 'nothing ran inside the replay frame');
        assert.equal(await replay.evaluate(() => window.__pwned ?? null), null, 'nothing reached the replay page');
        assert.ok(seen.handlers >= 2, `the replayed DOM carries the on* handlers (${seen.handlers})`);
        assert.ok(seen.jsUrls >= 1, `the replayed DOM carries javascript: URLs (${seen.jsUrls})`);
        assert.equal(seen.sandbox, 'allow-same-origin', 'rrweb iframe: sandboxed, scripts not allowed');
        assert.equal(seen.scripts, 0, 'rrweb rebuilds a recorded <script> as <noscript>');
        await screenshot(replay, `hostile-${name}`);
      });
    }
    assert.deepEqual(replayHits, [], 'no payload sent a request from the replay page');
    assert.deepEqual(dialogs, [], 'no dialog or popup');
    t.diagnostic(`the browser blocked ${blocked.length} attempt(s), e.g. ${blocked[0] ?? '-'}`);
    await viewing.close();
  });
});
