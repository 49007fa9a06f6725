/**
 * The binary codec on its own (what serve and the proxy share): parse
 * results for whole, partial, malformed and quiet packets, and the reply
 * writers' bytes.
 */

import { deepEqual, equal, ok } from "../helpers/assert.ts";
import { arithExtras, OP, packet, setExtras } from "../helpers/binary.ts";
import {
  BinaryRequest,
  BinaryStatus,
  Op,
  PARSE_CLOSE,
  parseBinaryRequest,
  writeBinaryError,
  writeBinaryHeader,
  writeBinaryStatLines,
  Writer,
} from "../../lib/protocol/mod.ts";

function parse(bytes: Uint8Array, maxValue = 1024): [number, BinaryRequest] {
  const req = new BinaryRequest();
  return [parseBinaryRequest(bytes, 0, bytes.length, req, maxValue), req];
}

Deno.test("binary codec: a set packet fills the shared Request (key, flags, exptime, value, cas, opaque)", () => {
  const p = packet({
    op: OP.SETQ,
    key: "key",
    value: "value",
    extras: setExtras(0xdeadbeef, 300),
    cas: 77n,
    opaque: 0x01020304,
  });
  const [used, req] = parse(p);
  equal(used, p.length);
  equal(req.op, Op.SET);
  equal(req.opcode, OP.SETQ);
  equal(req.command, OP.SET);
  ok(req.noreply);
  equal(String.fromCharCode(...req.keyBuf.subarray(req.keyStart, req.keyEnd)), "key");
  equal(String.fromCharCode(...req.buf.subarray(req.dataStart, req.dataEnd)), "value");
  equal(req.flags, 0xdeadbeef);
  equal(req.exptime, 300);
  equal(req.cas, 77);
  equal(req.opaque, 0x01020304);
});

Deno.test("binary codec: partial packets ask for the whole, bad magic closes, a value over the limit is swallowed", () => {
  const p = packet({ op: OP.SET, key: "k", value: "0123456789", extras: setExtras(0, 0) });
  for (const cut of [0, 10, 23, 24, 30, p.length - 1]) {
    const [used, req] = parse(p.subarray(0, cut));
    equal(used, 0, `cut at ${cut}`);
    ok(req.need === 24 || req.need === 24 + 8 + 1 || req.need === p.length, `need ${req.need}`);
  }
  equal(parse(packet({ op: OP.GET, key: "k", magic: 0x81 }))[0], PARSE_CLOSE);
  const [used, req] = parse(p, 5);
  equal(used, 24 + 8 + 1);
  ok(req.tooLarge);
  equal(req.swallow, 10);
  const incr =
    parse(packet({ op: OP.INCR, key: "n", extras: arithExtras(2n ** 64n - 1n, 5n, 7) }))[1];
  equal(incr.deltaBig, 2n ** 64n - 1n);
  equal(incr.initialBig, 5n);
  equal(incr.arithExptime, 7);
});

Deno.test("binary codec: malformed packets carry memcached's error packet, close or swallow", () => {
  const [, badShape] = parse(packet({ op: OP.GET, key: "k", extras: setExtras(0, 0), opaque: 9 }));
  equal(badShape.op, Op.ERROR);
  ok(badShape.closeAfter);
  const err = badShape.error!;
  deepEqual([...err.subarray(0, 8)], [0x81, OP.GET, 0, 0, 0, 0, 0, BinaryStatus.EINVAL]);
  equal(String.fromCharCode(...err.subarray(24)), "Invalid arguments");
  equal(new DataView(err.buffer, err.byteOffset).getUint32(12), 9);
  const [used, unknown] = parse(packet({ op: 0x60, key: "ab", value: "xyz" }));
  equal(used, 24 + 2);
  equal(unknown.swallow, 5); // memcached skips bodylen after the key: more than the body
  ok(!unknown.closeAfter);
  equal(String.fromCharCode(...unknown.error!.subarray(24)), "Unknown command");
});

Deno.test("binary codec: writers frame headers, errors and stat lines as memcached does", () => {
  const out = new Writer(16);
  writeBinaryHeader(out, OP.INCR, 0, 0xaabbccdd, 2 ** 40 + 5, 0, 0, 8);
  deepEqual([...out.view()], [
    0x81,
    5,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    8,
    0xaa,
    0xbb,
    0xcc,
    0xdd,
    0,
    0,
    1,
    0,
    0,
    0,
    0,
    5,
  ]);
  out.reset();
  const [, req] = parse(packet({ op: OP.DELETEQ, key: "k", opaque: 3 }));
  writeBinaryError(out, req, BinaryStatus.KEY_ENOENT);
  equal(out.length, 24 + "Not found".length);
  equal(out.buf[1], OP.DELETEQ);
  out.reset();
  const lines = new TextEncoder().encode("STAT pid 42\r\nSTAT version 1.6.18\r\nEND\r\n");
  writeBinaryStatLines(out, 1, lines, 0, lines.length);
  equal(out.length, 24 + 3 + 2 + 24 + 7 + 6);
});

Deno.test("binary codec: SASL requests with permits; data past memcached's SASL item is refused unread", () => {
  const permits = () => true;
  const sasl = (key: string, vlen: number, maxValue = 1 << 20) => {
    const bytes = packet({ op: OP.SASL_AUTH, key, value: "x".repeat(vlen) });
    const req = new BinaryRequest();
    const used = parseBinaryRequest(bytes, 0, bytes.length, req, maxValue, permits);
    return { used, req, length: bytes.length };
  };
  // mechanism + data + 59 bytes of item must fit 512 KiB.
  const fits = sasl("PLAIN", 524224);
  equal(fits.used, fits.length);
  ok(fits.req.sasl);
  equal(fits.req.dataEnd - fits.req.dataStart, 524224);
  for (
    const [key, vlen, status] of [["PLAIN", 524225, 0x82], ["P".repeat(33), 524300, 0x04]] as const
  ) {
    const r = sasl(key, vlen);
    equal(r.used, 24 + key.length, "header and key only");
    equal(r.req.op, Op.ERROR);
    equal(r.req.swallow, vlen);
    equal(r.req.error![7], status);
    ok(!r.req.closeAfter);
  }
  // Without permits (no -S): "Unknown command", the body skipped.
  const bytes = packet({ op: OP.SASL_AUTH, key: "PLAIN", value: "abc" });
  const req = new BinaryRequest();
  equal(parseBinaryRequest(bytes, 0, bytes.length, req, 1024), 24 + 5);
  equal(req.error![7], BinaryStatus.UNKNOWN_COMMAND);
  equal(req.swallow, 3);
});
