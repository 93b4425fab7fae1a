// The incremental JSON array splitter: every way of cutting a body into
// pieces gives the elements JSON.parse gives for the whole, and bodies that
// are not one complete array are refused.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { JsonArraySplitter, JsonStreamError, readJsonArray } from '../src/json_stream.js';

const BODY =
  ' [{"type":4,"timestamp":1,"data":{"href":"https://x.test/?a=[1,2]&b={}"}},' +
  '{"type":2,"data":{"s":"quote \\" and \\\\ and ] } , [ {","n":[[],[{}],-1.5e3]}},\n' +
  ' 7 , "plain, string" ,null,true,[1,[2]],{"u":"\\u00e9🎉"}] \n';

function splitInto(text, cuts) {
  const s = new JsonArraySplitter();
  const out = [];
  let at = 0;
  for (const cut of [...cuts, text.length]) {
    out.push(...s.push(text.slice(at, cut)));
    at = cut;
  }
  s.end();
  return out;
}

test('elements come out as JSON.parse reads them, however the body is cut', () => {
  const whole = JSON.parse(BODY);
  assert.deepEqual(splitInto(BODY, []), whole);
  for (let i = 0; i <= BODY.length; i++) assert.deepEqual(splitInto(BODY, [i]), whole, `cut at ${i}`);
  for (let i = 0; i <= BODY.length; i += 3) {
    for (let j = i; j <= BODY.length; j += 5) assert.deepEqual(splitInto(BODY, [i, j]), whole, `cuts at ${i}, ${j}`);
  }
  const oneByOne = [...Array(BODY.length).keys()];
  assert.deepEqual(splitInto(BODY, oneByOne), whole);
});

test('an element is given out as soon as it is complete', () => {
  const s = new JsonArraySplitter();
  assert.deepEqual(s.push('[{"a":1}'), []);
  assert.deepEqual(s.push(','), [{ a: 1 }]);
  assert.deepEqual(s.push('{"b":'), []);
  assert.deepEqual(s.push('2}]'), [{ b: 2 }]);
  s.end();
});

test('empty arrays are fine; broken or cut-off bodies are refused', () => {
  assert.deepEqual(splitInto('[]', []), []);
  assert.deepEqual(splitInto(' [ \n ] ', [2]), []);
  for (const bad of ['{"a":1}', '[1,]', '[,1]', '[1,,2]', '[1] x', '[{"a":}]', 'x[1]']) {
    assert.throws(() => splitInto(bad, []), JsonStreamError, bad);
  }
  for (const cutOff of ['', '[', '[{"a":1}', '[{"a":1},', '[{"a":"]']) {
    assert.throws(() => splitInto(cutOff, []), JsonStreamError, cutOff);
  }
});

test('readJsonArray reads a byte stream, multi-byte characters split across chunks', async () => {
  const bytes = new TextEncoder().encode(BODY);
  const chunks = [];
  for (let i = 0; i < bytes.length; i += 7) chunks.push(bytes.slice(i, i + 7));
  const body = new ReadableStream({
    start(controller) {
      for (const c of chunks) controller.enqueue(c);
      controller.close();
    },
  });
  const seen = [];
  const count = await readJsonArray(body, (elements) => seen.push(...elements));
  assert.equal(count, seen.length);
  assert.deepEqual(seen, JSON.parse(BODY));
});

test('readJsonArray rejects a stream that ends before the array does', async () => {
  const body = new Response('[{"a":1},{"b"').body;
  const seen = [];
  await assert.rejects(readJsonArray(body, (e) => seen.push(...e)), JsonStreamError);
  assert.deepEqual(seen, [{ a: 1 }]);
});
