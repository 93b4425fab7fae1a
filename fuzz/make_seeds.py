#!/usr/bin/env python3
"""Writes the committed seed corpora in fuzz/seeds/<target>/.

Seeds are starting points, not tests: each is a small input in the layout its
target documents, chosen to reach one branch the fuzzer would take long to
find by itself (a valid batch, a compressed body, a header set that round
trips). Re-run after changing a target's input layout; the output is
deterministic (gzip mtime 0, fixed zstd level), so unchanged seeds stay
unchanged in git. Needs the `zstd` command-line tool.
"""

import gzip
import json
import os
import shutil
import subprocess
import zlib

SEEDS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds")

IDENTITY, GZIP, DEFLATE, ZSTD = 0, 1, 2, 3


def control(encoding, cell_step):
    """Byte 0 of a `body` input: encoding in bits 0-1, cell limit 16 + 64*step."""
    return bytes([encoding | (cell_step << 2)])


def zstd(data):
    return subprocess.run(
        ["zstd", "-q", "-c", "-3", "--no-check"], input=data, capture_output=True, check=True
    ).stdout


def raw_deflate(data):
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


def event(t, ts, **data):
    return {"type": t, "timestamp": ts, "data": data}


def batch(session="s1", seq=0, events=None, **extra):
    b = {"sessionId": session, "seq": seq, "events": events or [event(2, 1_732_700_000_000)]}
    b.update(extra)
    return b


def dump(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def body_seeds():
    one = dump(batch(windowId="w1", metadata={"url": "https://x.test/"}))
    many_events = dump(
        batch(events=[event(3 if i else 2, 1000 + i, n="abcdefghij" * (i % 7)) for i in range(60)])
    )
    array = dump([batch(), batch("s2", 1), {"seq": 2}, 5, batch("s3", 3, windowId=None)])
    yield "valid_single", control(IDENTITY, 63) + one
    yield "valid_spaced", control(IDENTITY, 63) + b' \n{ "sessionId" : "a", "seq" : 1 , "events" : [ {"type":4,"timestamp":0} ] }\n'
    yield "array_mixed", control(IDENTITY, 63) + array
    yield "splits_small_cells", control(IDENTITY, 0) + many_events
    yield "splits_medium_cells", control(IDENTITY, 2) + many_events
    yield "gzip", control(GZIP, 63) + gzip.compress(one, mtime=0)
    yield "gzip_sniffed", control(IDENTITY, 1) + gzip.compress(many_events, mtime=0)
    yield "gzip_truncated", control(GZIP, 63) + gzip.compress(many_events, mtime=0)[:40]
    yield "gzip_multimember", control(GZIP, 63) + gzip.compress(one[:10], mtime=0) + gzip.compress(one[10:], mtime=0)
    yield "deflate_zlib", control(DEFLATE, 63) + zlib.compress(array)
    yield "deflate_raw", control(DEFLATE, 63) + raw_deflate(one)
    yield "zstd", control(ZSTD, 63) + zstd(one)
    yield "zstd_sniffed", control(IDENTITY, 3) + zstd(many_events)
    yield "bomb_gzip", control(GZIP, 63) + gzip.compress(b"[" + b" " * (1 << 21) + b"]", mtime=0)
    yield "empty_array", control(IDENTITY, 63) + b"[]"
    yield "not_json", control(IDENTITY, 63) + b"{\"sessionId\":"
    yield "not_utf8", control(IDENTITY, 63) + b"{\"sessionId\":\"\xff\xfe\",\"seq\":0}"
    yield "scalar", control(IDENTITY, 63) + b"42"
    yield "wrong_types", control(IDENTITY, 63) + dump(
        {"sessionId": 7, "seq": "1", "events": {"type": 2}, "metadata": "x"}
    )
    yield "bad_events", control(IDENTITY, 63) + dump(
        batch(events=[event(7, 1), {"type": "2", "timestamp": 1}, {"timestamp": 1.5}, 3])
    )
    yield "huge_numbers", control(IDENTITY, 63) + (
        b'{"sessionId":"s","seq":9223372036854775807,"events":[{"type":6,"timestamp":9223372036854775807},'
        b'{"type":1,"timestamp":18446744073709551616},{"type":1e0,"timestamp":1}]}'
    )
    yield "unicode_and_escapes", control(IDENTITY, 63) + dump(
        batch(
            events=[event(5, 3, tag="\u00e9\u4e2d\U0001f600", esc="\\\"\n"), {"typ\\u0065": 2, "timestamp": 2}],
            metadata={"url": "https://\u00e9.test/\u2028"},
        )
    ).replace(b"typ\\\\u0065", b"typ\\u0065")
    yield "unknown_keys", control(IDENTITY, 63) + dump(
        batch(sdk={"v": [1, 2, {"x": None}]}, extra=True, metadata={"url": 5, "userId": "u"})
    )
    yield "duplicate_keys", control(IDENTITY, 63) + (
        b'{"sessionId":"a","sessionId":"b","seq":0,"events":[{"type":2,"timestamp":1,"timestamp":2}]}'
    )
    yield "nested_deep", control(IDENTITY, 63) + dump(
        batch(events=[event(3, 1, n=json.loads("[" * 100 + "]" * 100))])
    )
    # Found by the fuzzer: valid JSON that serde_json::Value refuses (out of f64 range).
    yield "event_number_beyond_f64", control(IDENTITY, 63) + (
        b'{"sessionId":"s","seq":9223372036854775807,"events":[{"type":6,"t\x7fimestamp":'
        + b"9" + b"0" * 56 + b'2230e23074,"timestamp":1}]}'
    )
    yield "long_id", control(IDENTITY, 63) + dump(batch(session="a" * 129))
    yield "null_window_and_metadata", control(IDENTITY, 63) + (
        b'{"sessionId":"s","windowId":null,"metadata":null,"seq":0,"events":[{"type":0,"timestamp":0}]}'
    )


def envelope_seeds():
    meta = {
        "lucent.v": "1",
        "lucent.org": "org-1",
        "lucent.key_id": "luc_pk_deadbeef",
        "lucent.batch_id": "0193b3c4-5d6e-7f80-9a1b-2c3d4e5f6a7b",
        "lucent.received_ms": "1732700000000",
        "lucent.encoding": "gzip",
        "lucent.content_type": "text/plain;charset=UTF-8",
        "lucent.user_agent": "Mozilla/5.0",
    }

    def without(*names):
        return {k: v for k, v in meta.items() if k not in names}

    yield "valid_json", dump(meta)
    yield "valid_json_ascii_escapes", json.dumps(
        dict(meta, **{"lucent.user_agent": "UA \u00e9\U0001f600 \"q\""}), ensure_ascii=True
    ).encode()
    yield "minimal_json", dump(without("lucent.v", "lucent.key_id", "lucent.encoding", "lucent.content_type", "lucent.user_agent"))
    yield "missing_org", dump(without("lucent.org"))
    yield "bad_received_ms", dump(dict(meta, **{"lucent.received_ms": "18446744073709551616"}))
    yield "plus_received_ms", dump(dict(meta, **{"lucent.received_ms": "+5"}))
    yield "bad_encoding", dump(dict(meta, **{"lucent.encoding": "GZIP"}))
    yield "non_string_values", dump(dict(meta, **{"lucent.key_id": 7, "lucent.user_agent": None, "x": [1]}))
    yield "unknown_headers", dump(dict(meta, traceparent="00-abc-def-01", **{"lucent.future": "x"}))
    yield "duplicate_keys", dump(meta)[:-1] + b',"lucent.org":"org-2"}'
    yield "not_an_object", b'["lucent.org","x"]'
    yield "truncated", dump(meta)[:50]
    yield "header_lines", "\n".join(f"{k}={v}" for k, v in meta.items()).encode()
    yield "header_lines_colon", "\n".join(f"{k}: {v}" for k, v in meta.items()).encode()
    yield "header_lines_unicode", "\n".join(
        f"{k}={v}" for k, v in dict(meta, **{"lucent.org": "\u00f8rg\u0000", "lucent.user_agent": "\U0001f600"}).items()
    ).encode()


def key_seeds():
    key = "luc_pk_0123456789abcdef0123456789abcdef"
    yield "query_only", f"api_key={key}".encode()
    yield "query_among_others", f"a=1&b&api_key={key}&api_key=later".encode()
    yield "query_repeated_same", f"api_key={key}&x=1&api_key={key}".encode()
    yield "query_empty_first", f"api_key=&api_key={key}".encode()
    yield "query_bare_name", b"api_key&x=1"
    yield "header_only", f"\nx-lucent-api-key:{key}".encode()
    yield "header_and_query", f"api_key=luc_pk_ffffffffffffffffffffffffffffffff\nx-lucent-api-key: {key} ".encode()
    yield "header_empty_falls_back", f"api_key={key}\nx-lucent-api-key:   ".encode()
    yield "header_not_text", b"api_key=q\nx-lucent-api-key:\xff\xfe"
    yield "header_twice", f"\nx-lucent-api-key:first\nX-Lucent-Api-Key:{key}".encode()
    yield "uppercase_hex", b"api_key=luc_pk_0123456789ABCDEF0123456789abcdef"
    yield "wrong_length", b"api_key=luc_pk_0123456789abcdef0123456789abcde"
    yield "wrong_prefix", b"api_key=luc_sk_0123456789abcdef0123456789abcdef"
    yield "unicode_query", "api_key=luc_pk_0123456789abcdef0123456789abcd\u00e9f".encode()
    yield "content_encodings", b"\ncontent-encoding: GZIP \ncontent-encoding:x-gzip\ncontent-encoding:deflate\ncontent-encoding:zstd\ncontent-encoding:identity\ncontent-encoding:\ncontent-encoding:br\ncontent-encoding:gzip, br"
    yield "content_encoding_unicode_space", "\u00a0gzip\u2003".encode()


def log_record(offset, headers, body):
    """One record of a log segment (common/src/log/record.rs)."""
    payload = len(headers).to_bytes(4, "little") + headers + body
    head = offset.to_bytes(8, "little") + len(payload).to_bytes(4, "little")
    checksum = zlib.crc32(head + payload) & 0xFFFFFFFF
    return head + checksum.to_bytes(4, "little") + payload


def log_seeds():
    two = log_record(0, b'{"lucent.org":"o"}', b'{"sessionId":"s"}') + log_record(1, b"{}", b"x" * 50)
    yield "two_records", two
    yield "torn_tail", two + log_record(2, b"{}", b"y" * 30)[:20]
    yield "out_of_sequence", two + log_record(7, b"{}", b"z")
    yield "zeroes_after", two + bytes(64)


def main():
    for target, seeds in [("body", body_seeds), ("envelope", envelope_seeds), ("key_and_query", key_seeds), ("log_segment", log_seeds)]:
        out = os.path.join(SEEDS, target)
        shutil.rmtree(out, ignore_errors=True)
        os.makedirs(out)
        for name, data in seeds():
            with open(os.path.join(out, name), "wb") as f:
                f.write(data)


if __name__ == "__main__":
    main()
