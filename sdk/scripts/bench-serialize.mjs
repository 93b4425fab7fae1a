// Issue 15: does serializing a large batch in the Web Worker free the main thread?
//
// In headless Chromium (the e2e tests' browser, driven by playwright-core), rrweb
// takes a real full snapshot of a generated page (cards of headings, text,
// images, links and forms, plus a stylesheet), and we time on the page's main
// thread what handing that event to a worker costs, three ways:
//   (a) JSON.stringify(event) + postMessage(string)         — today's path
//   (t) JSON.stringify + TextEncoder.encode + postMessage(transfer ArrayBuffer)
//   (b) postMessage(event): structured clone of the object; the worker stringifies
// and, for reference, postMessage of the already-built string alone, JSON.stringify
// alone and structuredClone alone.
// Each is run `RUNS` times after a warm-up, one at a time (we wait for the
// worker's answer before the next), and the median and min are printed.
//
//   node scripts/bench-serialize.mjs            (CHROMIUM_PATH to use another browser)
import fs from 'node:fs';
import { chromium } from 'playwright-core';

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const RUNS = Number(process.env.RUNS || 31);
const rrweb = fs.readFileSync(new URL('../node_modules/rrweb/dist/rrweb.umd.min.cjs', import.meta.url), 'utf8');

/** Cards for ~300 KB, ~1 MB and ~2 MB of snapshot JSON. */
const SIZES = (process.env.CARDS || '150,500,1000').split(',').map(Number);

function inPage({ cards, runs }) {
  const words = 'lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore et dolore magna aliqua'.split(' ');
  const text = (i, n) => Array.from({ length: n }, (_, k) => words[(i * 7 + k * 3) % words.length]).join(' ');
  const style = document.createElement('style');
  style.textContent = Array.from({ length: 200 }, (_, i) => `.c${i}{margin:${i % 9}px;padding:${i % 5}px 4px;color:#${(i * 4099).toString(16).slice(0, 6).padEnd(6, '0')}}`).join('\n');
  document.head.appendChild(style);
  const root = document.createElement('main');
  for (let i = 0; i < cards; i++) {
    const card = document.createElement('section');
    card.className = `card c${i % 200} grid-item`;
    card.setAttribute('data-id', String(i));
    card.innerHTML =
      `<header class="card-head"><h3 class="title">${text(i, 5)}</h3><img src="/img/${i}.png" alt="${text(i, 3)}" width="64" height="64"></header>` +
      `<div class="body"><p>${text(i, 24)}</p><p class="muted">${text(i + 1, 12)}</p></div>` +
      `<ul class="links"><li><a href="/item/${i}">${text(i, 2)}</a></li><li><a href="/item/${i}/more">${text(i + 2, 2)}</a></li><li><span class="tag">${text(i + 3, 1)}</span></li></ul>` +
      `<form><input type="text" name="q${i}" value="${text(i, 2)}"><button type="submit">Go</button></form>`;
    root.appendChild(card);
  }
  document.body.appendChild(root);

  let snapshot = null;
  const stop = window.rrweb.record({ emit: (e) => { if (e.type === 2) snapshot = e; } });
  stop?.();

  const src = `onmessage=e=>{const d=e.data;const t0=performance.now();let n;if(d.text!==undefined)n=d.text.length;else if(d.buf)n=d.buf.byteLength;else n=JSON.stringify(d.event).length;postMessage({id:d.id,n,workerMs:performance.now()-t0})}`;
  const w = new Worker(URL.createObjectURL(new Blob([src], { type: 'text/javascript' })));
  let nextId = 0;
  const answer = () => new Promise((r) => (w.onmessage = (e) => r(e.data)));
  const ways = {
    a: () => { const t = JSON.stringify(snapshot); w.postMessage({ id: nextId++, text: t }); },
    t: () => { const b = new TextEncoder().encode(JSON.stringify(snapshot)); w.postMessage({ id: nextId++, buf: b }, [b.buffer]); },
    b: () => { w.postMessage({ id: nextId++, event: snapshot }); },
    // The string alone (already built, as a batch body is when it is sent today).
    s: () => { w.postMessage({ id: nextId++, text: json }); },
  };
  const json = JSON.stringify(snapshot);
  const parts = {
    stringify: () => { JSON.stringify(snapshot); },
    clone: () => { structuredClone(snapshot); },
  };
  return (async () => {
    const out = { jsonBytes: new TextEncoder().encode(JSON.stringify(snapshot)).length, nodes: document.getElementsByTagName('*').length };
    for (const [k, fn] of Object.entries(ways)) {
      const ms = [];
      const workerMs = [];
      for (let r = 0; r < runs + 3; r++) {
        const done = answer();
        const t0 = performance.now();
        fn();
        const t1 = performance.now();
        const a = await done;
        if (r >= 3) {
          ms.push(t1 - t0);
          workerMs.push(a.workerMs);
        }
      }
      out[k] = { ms, workerMs };
    }
    for (const [k, fn] of Object.entries(parts)) {
      const ms = [];
      for (let r = 0; r < runs + 3; r++) {
        const t0 = performance.now();
        fn();
        if (r >= 3) ms.push(performance.now() - t0);
        await new Promise((res) => setTimeout(res, 0));
      }
      out[k] = { ms };
    }
    w.terminate();
    return out;
  })();
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const min = (xs) => Math.min(...xs);
const f = (x) => x.toFixed(1).padStart(6);

const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
try {
  console.log(`${(await browser.version())}, ${RUNS} runs each; main-thread ms, median (min)`);
  console.log('| snapshot JSON | DOM nodes | (a) stringify + post(string) | (t) stringify + encode + transfer | (b) post(object) | post(string) alone | JSON.stringify alone | structuredClone alone | worker\'s stringify in (b) |');
  console.log('|---|---|---|---|---|---|---|---|---|');
  for (const cards of SIZES) {
    const page = await browser.newPage();
    await page.setContent('<!doctype html><html><head><title>bench</title></head><body></body></html>');
    await page.addScriptTag({ content: rrweb });
    const r = await page.evaluate(inPage, { cards, runs: RUNS });
    await page.close();
    const cell = (k) => `${f(median(r[k].ms))} (${f(min(r[k].ms))})`;
    console.log(
      `| ${(r.jsonBytes / 1024).toFixed(0).padStart(6)} KiB | ${String(r.nodes).padStart(6)} | ${cell('a')} | ${cell('t')} | ${cell('b')} | ${cell('s')} | ${cell('stringify')} | ${cell('clone')} | ${f(median(r.b.workerMs))} |`,
    );
  }
} finally {
  await browser.close();
}
