/**
 * The binary codec's `permits` (memcached -S): refused opcodes answer
 * "Auth failure." and close where memcached checks it, SASL opcodes come
 * back as requests with their mechanism and data, and without `permits`
 * everything stays as memcached without -S.
 */

import { deepEqual, equal, ok } from "../helpers/assert.ts";
import { OP, packet } from "../helpers/binary.ts";
import { BinaryRequest, BinaryStatus, Op, parseBinaryRequest } from "../../lib/protocol/mod.ts";

const latin1 = (b: Uint8Array) => String.fromCharCode(...b);

function parse(
  bytes: Uint8Array,
  permits: ((op: number) => boolean) | null,
  maxValue = 1024,
  end = bytes.length,
): [number, BinaryRequest] {
  const req = new BinaryRequest();
  return [parseBinaryRequest(bytes, 0, end, req, maxValue, permits), req];
}

function status(req: BinaryRequest) {
  return ((req.error as Uint8Array)[6] << 8) | req.error![7];
}
const OPEN = new Set<number>([OP.SASL_LIST, OP.SASL_AUTH, OP.SASL_STEP, OP.VERSION]);
function before(op: number) {
  return OPEN.has(op);
}

Deno.test("binary codec -S: before login a get is refused with Auth failure. and closes", () => {
  const p = packet({ op: OP.GET, key: "k", opaque: 7 });
  const [used, req] = parse(p, before);
  equal(used, p.length);
  equal(req.op, Op.ERROR);
  equal(status(req), BinaryStatus.AUTH_ERROR);
  equal(latin1(req.error!.subarray(24)), "Auth failure.");
  ok(req.closeAfter);
  equal(new DataView(req.error!.buffer, req.error!.byteOffset).getUint32(12), 7, "opaque echoed");
});

Deno.test("binary codec -S: the key-beyond-body check comes first, then the login check", () => {
  const [, a] = parse(packet({ op: OP.GET, key: "abc", bodylen: 2 }), before);
  equal(status(a), BinaryStatus.UNKNOWN_COMMAND);
  const [, b] = parse(packet({ op: OP.GET, key: "k".repeat(251) }), before);
  equal(status(b), BinaryStatus.AUTH_ERROR, "an over-long key is refused for the login first");
});

Deno.test("binary codec -S: SASL auth comes back as a request with mechanism and data", () => {
  const p = packet({ op: OP.SASL_AUTH, key: "PLAIN", value: "\0u\0p", opaque: 3 });
  const [used, req] = parse(p, before);
  equal(used, p.length);
  ok(req.sasl);
  equal(req.error, null);
  equal(latin1(req.keyBuf.subarray(req.keyStart, req.keyEnd)), "PLAIN");
  equal(latin1(req.buf.subarray(req.dataStart, req.dataEnd)), "\0u\0p");
  // Partial data: more bytes are needed, the whole packet.
  const [partial, r2] = parse(p, before, 1024, p.length - 1);
  equal(partial, 0);
  equal(r2.need, p.length);
  // Data over maxValue: out of memory, the data swallowed.
  const [, r3] = parse(p, before, 2);
  equal(status(r3), BinaryStatus.ENOMEM);
  equal(r3.swallow, 4);
  ok(!r3.sasl);
});

Deno.test("binary codec -S: list mechs with a body is still a protocol error", () => {
  const [, req] = parse(packet({ op: OP.SASL_LIST, key: "x" }), before);
  equal(status(req), BinaryStatus.EINVAL);
  ok(req.closeAfter);
});

Deno.test("binary codec without permits: SASL answers Unknown command as memcached without -S", () => {
  const [, req] = parse(packet({ op: OP.SASL_AUTH, key: "PLAIN", value: "\0u\0p" }), null);
  ok(!req.sasl);
  equal(status(req), BinaryStatus.UNKNOWN_COMMAND);
  deepEqual([req.swallow, req.closeAfter], [4, false]);
  const [, get] = parse(packet({ op: OP.GET, key: "k" }), null);
  equal(get.op, Op.GET);
});
