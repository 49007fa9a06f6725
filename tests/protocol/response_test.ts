import { deepEqual, equal, ok } from "../helpers/assert.ts";
import { bytesToString, latin1 } from "../helpers/bytes.ts";
import {
  Item,
  ITEM_STRIDE,
  NO_TTL,
  Op,
  type OpCode,
  parseDumpEntry,
  ReplyKind,
  ReplyParser,
} from "../../lib/protocol/mod.ts";

/** Parses `text` whole and also fed one byte at a time; both must agree. */
function parseWhole(text: string, op: OpCode): { p: ReplyParser; buf: Uint8Array; n: number } {
  const buf = latin1(text);
  const p = new ReplyParser();
  // Fed growing prefixes: every proper prefix needs more, the full frame parses.
  const q = new ReplyParser();
  let n = 0;
  for (let end = 1; end <= buf.length; end++) {
    n = q.parse(buf, 0, end, op);
    if (n !== 0) break;
  }
  const whole = p.parse(buf, 0, buf.length, op);
  equal(n, whole, `prefix feeding and whole parse agree for ${JSON.stringify(text)}`);
  return { p, buf, n: whole };
}

function str(buf: Uint8Array, s: number, e: number): string {
  return bytesToString(buf.subarray(s, e));
}

Deno.test("get reply with several VALUE items gives each item's key, flags, data and cas", () => {
  const text =
    "VALUE a 5 3 10\r\nxyz\r\nVALUE bb 0 0 11\r\n\r\nVALUE c 4294967295 2 12\r\n\r\n\r\nEND\r\n";
  const { p, buf, n } = parseWhole(text, Op.GETS);
  equal(n, buf.length);
  equal(p.kind, ReplyKind.VALUES);
  equal(p.count, 3);
  const got = [];
  for (let i = 0; i < p.count; i++) {
    const b = i * ITEM_STRIDE;
    const it = p.items;
    got.push([
      str(buf, it[b + Item.KEY_START], it[b + Item.KEY_END]),
      it[b + Item.FLAGS],
      str(buf, it[b + Item.DATA_START], it[b + Item.DATA_END]),
      str(buf, it[b + Item.CAS_START], it[b + Item.CAS_END]),
    ]);
  }
  deepEqual(got, [["a", 5, "xyz", "10"], ["bb", 0, "", "11"], ["c", 4294967295, "\r\n", "12"]]);
  equal(str(buf, p.valueStart, p.valueEnd), "xyz");
  equal(p.flags, 5);
  equal(p.cas(buf), 10n);
});

Deno.test("get miss is an empty VALUES frame", () => {
  const { p, n } = parseWhole("END\r\n", Op.GET);
  equal(n, 5);
  equal(p.kind, ReplyKind.VALUES);
  equal(p.count, 0);
  equal(p.valueStart, -1);
});

Deno.test("only one frame is consumed when several replies are buffered", () => {
  const buf = latin1("VALUE k 0 1\r\na\r\nEND\r\nSTORED\r\n");
  const p = new ReplyParser();
  const n = p.parse(buf, 0, buf.length, Op.GET);
  equal(n, 21);
  equal(p.parse(buf, n, buf.length, Op.SET), 8);
  equal(p.kind, ReplyKind.STORED);
});

Deno.test("a partly received multi-get resumes after the buffer was compacted", () => {
  const frame = "VALUE k1 1 2\r\nab\r\nVALUE k2 2 3\r\ncde\r\nEND\r\n";
  const p = new ReplyParser();
  const first = latin1("xxxxx" + frame.slice(0, 30));
  equal(p.parse(first, 5, first.length, Op.GET), 0);
  // The caller moved the unparsed bytes to the front and appended the rest.
  const second = latin1(frame);
  equal(p.parse(second, 0, second.length, Op.GET), frame.length);
  equal(p.count, 2);
  const it = p.items;
  equal(str(second, it[Item.KEY_START], it[Item.KEY_END]), "k1");
  equal(str(second, it[Item.DATA_START], it[Item.DATA_END]), "ab");
  equal(str(second, it[ITEM_STRIDE + Item.DATA_START], it[ITEM_STRIDE + Item.DATA_END]), "cde");
});

Deno.test("status replies map to their kinds for the ops that produce them", () => {
  const cases: [string, OpCode, number][] = [
    ["STORED\r\n", Op.SET, ReplyKind.STORED],
    ["NOT_STORED\r\n", Op.ADD, ReplyKind.NOT_STORED],
    ["EXISTS\r\n", Op.CAS, ReplyKind.EXISTS],
    ["NOT_FOUND\r\n", Op.CAS, ReplyKind.NOT_FOUND],
    ["DELETED\r\n", Op.DELETE, ReplyKind.DELETED],
    ["NOT_FOUND\r\n", Op.DELETE, ReplyKind.NOT_FOUND],
    ["TOUCHED\r\n", Op.TOUCH, ReplyKind.TOUCHED],
    ["OK\r\n", Op.FLUSH_ALL, ReplyKind.OK],
    ["OK\r\n", Op.VERBOSITY, ReplyKind.OK],
    ["18446744073709551615\r\n", Op.INCR, ReplyKind.NUMBER],
    ["0\r\n", Op.DECR, ReplyKind.NUMBER],
    ["NOT_FOUND\r\n", Op.INCR, ReplyKind.NOT_FOUND],
    ["VERSION 1.6.18\r\n", Op.VERSION, ReplyKind.VERSION],
    ["ERROR\r\n", Op.SET, ReplyKind.ERROR],
    ["CLIENT_ERROR bad data chunk\r\n", Op.SET, ReplyKind.CLIENT_ERROR],
    ["SERVER_ERROR out of memory storing object\r\n", Op.SET, ReplyKind.SERVER_ERROR],
    ["SERVER_ERROR object too large for cache\r\n", Op.GET, ReplyKind.SERVER_ERROR],
    ["ERROR: shutdown not enabled\r\n", Op.SHUTDOWN, ReplyKind.ERROR],
  ];
  for (const [text, op, kind] of cases) {
    const { p, n } = parseWhole(text, op);
    equal(n, text.length, text);
    equal(p.kind, kind, text);
  }
});

Deno.test("error and version texts are exposed after the keyword", () => {
  const { p, buf } = parseWhole("CLIENT_ERROR bad command line format\r\n", Op.GET);
  equal(str(buf, p.textStart, p.textEnd), "bad command line format");
  const v = parseWhole("VERSION 1.6.18\r\n", Op.VERSION);
  equal(str(v.buf, v.p.textStart, v.p.textEnd), "1.6.18");
  const num = parseWhole("42\r\n", Op.INCR);
  equal(str(num.buf, num.p.textStart, num.p.textEnd), "42");
});

Deno.test("a reply that cannot answer the request is rejected as out of step", () => {
  const p = new ReplyParser();
  const cases: [string, OpCode][] = [
    ["STORED\r\n", Op.GET],
    ["VALUE k 0 1\r\na\r\nSTORED\r\n", Op.GET],
    ["DELETED\r\n", Op.SET],
    ["END\r\n", Op.SET],
    ["HD\r\n", Op.SET],
    ["STORED\r\n", Op.MG],
    ["VALUE k x 1\r\na\r\nEND\r\n", Op.GET],
    ["VALUE k 0 1\r\nabc\r\nEND\r\n", Op.GET],
    ["VA 2 f1\r\nabcd\r\n", Op.MG],
    ["HD\r\n", Op.MN],
  ];
  for (const [text, op] of cases) {
    const buf = latin1(text);
    equal(p.parse(buf, 0, buf.length, op), -1, text);
    ok(p.error.length > 0);
  }
});

Deno.test("a reply line without end beyond the limit is rejected", () => {
  const buf = new Uint8Array(70000).fill(0x41);
  const p = new ReplyParser();
  equal(p.parse(buf, 0, 1000, Op.SET), 0);
  equal(p.parse(buf, 0, buf.length, Op.SET), -1);
});

Deno.test("meta VA reply gives the value, client flags, ttl and cas", () => {
  const { p, buf, n } = parseWhole("VA 3 f5 t100 ka%20b c77 s3\r\nxyz\r\n", Op.MG);
  equal(n, buf.length);
  equal(p.kind, ReplyKind.VA);
  equal(str(buf, p.valueStart, p.valueEnd), "xyz");
  equal(p.flags, 5);
  equal(p.ttl, 100);
  equal(p.cas(buf), 77n);
  const k = p.metaFlag(buf, 0x6b);
  ok(k > 0);
  equal(str(buf, k, k + 5), "a%20b");
  equal(p.metaFlag(buf, 0x4f), -1);
});

Deno.test("meta value reply with unlimited ttl and no flags", () => {
  const a = parseWhole("VA 1 f0 t-1\r\nq\r\n", Op.MG);
  equal(a.p.ttl, -1);
  const b = parseWhole("VA 0\r\n\r\n", Op.MG);
  equal(b.p.kind, ReplyKind.VA);
  equal(b.p.valueEnd - b.p.valueStart, 0);
  equal(b.p.ttl, NO_TTL);
  equal(b.p.flags, 0);
});

Deno.test("meta status codes map to their kinds", () => {
  const cases: [string, OpCode, number][] = [
    ["HD\r\n", Op.MS, ReplyKind.HD],
    ["HD c4\r\n", Op.MS, ReplyKind.HD],
    ["NS\r\n", Op.MS, ReplyKind.NS],
    ["EX\r\n", Op.MS, ReplyKind.EX],
    ["NF\r\n", Op.MD, ReplyKind.NF],
    ["EN\r\n", Op.MG, ReplyKind.EN],
    ["MN\r\n", Op.MN, ReplyKind.MN],
    ["MN\r\n", Op.MG, ReplyKind.MN],
    ["ME k exp=-1 la=0 cas=2 fetch=yes cls=1 size=61\r\n", Op.ME, ReplyKind.ME],
    ["VA 2 t5\r\n15\r\n", Op.MA, ReplyKind.VA],
    ["CLIENT_ERROR bad command line format\r\n", Op.MS, ReplyKind.CLIENT_ERROR],
  ];
  for (const [text, op, kind] of cases) {
    const { p, n } = parseWhole(text, op);
    equal(n, text.length, text);
    equal(p.kind, kind, text);
  }
  const { p, buf } = parseWhole("HD c4 t-1 f9\r\n", Op.MG);
  equal(p.cas(buf), 4n);
  equal(p.flags, 9);
  equal(p.ttl, -1);
});

Deno.test("stats reply lists names and values until END", () => {
  const { p, buf, n } = parseWhole("STAT pid 3832\r\nSTAT version 1.6.18\r\nEND\r\n", Op.STATS);
  equal(n, buf.length);
  equal(p.kind, ReplyKind.STATS);
  equal(p.count, 2);
  const it = p.items;
  equal(str(buf, it[Item.KEY_START], it[Item.KEY_END]), "pid");
  equal(str(buf, it[Item.DATA_START], it[Item.DATA_END]), "3832");
  equal(str(buf, it[ITEM_STRIDE + Item.DATA_START], it[ITEM_STRIDE + Item.DATA_END]), "1.6.18");
  equal(parseWhole("RESET\r\n", Op.STATS).p.kind, ReplyKind.RESET);
});

Deno.test("metadump reply: lines ended by a bare LF, then END", () => {
  const text = "key=a%2520b exp=1795600787 la=1795600687 cas=1 fetch=no cls=1 size=71\n" +
    "key=%00%01%02%FF exp=-1 la=1 cas=3 fetch=yes cls=1 size=69\nEND\r\n";
  const { p, buf, n } = parseWhole(text, Op.LRU_CRAWLER);
  equal(n, buf.length);
  equal(p.kind, ReplyKind.DUMP);
  equal(p.count, 2);
  const e = parseDumpEntry(buf, p.items[Item.KEY_START], p.items[Item.KEY_END]);
  ok(e);
  equal(bytesToString(e.key), "a%20b");
  equal(e.exp, 1795600787);
  equal(e.cas, 1n);
  equal(e.fetch, false);
  equal(e.size, 71);
  const e2 = parseDumpEntry(
    buf,
    p.items[ITEM_STRIDE + Item.KEY_START],
    p.items[ITEM_STRIDE + Item.KEY_END],
  );
  ok(e2);
  deepEqual([...e2.key], [0, 1, 2, 255]);
  equal(e2.exp, -1);
  equal(e2.fetch, true);
  equal(
    parseWhole("BUSY currently processing crawler request\r\n", Op.LRU_CRAWLER).p.kind,
    ReplyKind.BUSY,
  );
  equal(
    parseWhole("ERROR cannot pipeline other commands before metadump\r\n", Op.LRU_CRAWLER).p.kind,
    ReplyKind.ERROR,
  );
  equal(parseWhole("OK\r\n", Op.LRU_CRAWLER).p.kind, ReplyKind.OK);
});

Deno.test("streamed metadump lines come one by one and END closes the stream", () => {
  const buf = latin1("key=k exp=-1 la=1 cas=2 fetch=no cls=1 size=61\nkey=j exp=5\nEND\r\n");
  const p = new ReplyParser();
  let pos = 0;
  const kinds: number[] = [];
  for (;;) {
    const n = p.parseDumpLine(buf, pos, buf.length);
    ok(n > 0);
    kinds.push(p.kind);
    if (p.kind !== ReplyKind.DUMP_LINE) break;
    const e = parseDumpEntry(buf, p.textStart, p.textEnd);
    ok(e);
    pos += n;
  }
  deepEqual(kinds, [ReplyKind.DUMP_LINE, ReplyKind.DUMP_LINE, ReplyKind.DUMP]);
  equal(p.parseDumpLine(buf, 0, 10), 0);
});

Deno.test("malformed metadump keys are rejected", () => {
  const bad = latin1("key=%Zz exp=1");
  equal(parseDumpEntry(bad, 0, bad.length), undefined);
  const none = latin1("exp=1 la=2");
  equal(parseDumpEntry(none, 0, none.length), undefined);
});

Deno.test("VALUE lines: the one-pass item path accepts and rejects exactly what the line rules say", () => {
  // [line and data block, valid, key, flags, data, cas]
  const cases: [string, boolean, string, number, string, string | null][] = [
    ["VALUE k 0 3\r\nabc\r\n", true, "k", 0, "abc", null],
    ["VALUE k 0 3\nabc\r\n", true, "k", 0, "abc", null], // a bare \n ends the line too
    ["VALUE k 12 3 123\r\nabc\r\n", true, "k", 12, "abc", "123"],
    ["VALUE k 12 3 123\nabc\r\n", true, "k", 12, "abc", "123"],
    ["VALUE a\rb 7 1\r\nx\r\n", true, "a\rb", 7, "x", null],
    ["VALUE k 9007199254740991 0\r\n\r\n", true, "k", 9007199254740991, "", null],
    ["VALUE k 0 0 18446744073709551615\r\n\r\n", true, "k", 0, "", "18446744073709551615"],
    ["VALUE k 00 003\r\nabc\r\n", true, "k", 0, "abc", null],
    ["VALUE k 90071992547409919 0\r\n\r\n", false, "", 0, "", null],
    ["VALUE k 9007199254740992 0\r\n\r\n", false, "", 0, "", null],
    ["VALUE k 0 3 \r\nabc\r\n", false, "", 0, "", null],
    ["VALUE k 0 3 12x\r\nabc\r\n", false, "", 0, "", null],
    ["VALUE k 0 3 1 2\r\nabc\r\n", false, "", 0, "", null],
    ["VALUE  0 3\r\nabc\r\n", false, "", 0, "", null],
    ["VALUE k 0 3\r\r\nabc\r\n", false, "", 0, "", null],
    ["VALUE k 0\r\nabc\r\n", false, "", 0, "", null],
    ["VALUE k\r\nabc\r\n", false, "", 0, "", null],
    ["VALUE k -1 3\r\nabc\r\n", false, "", 0, "", null],
    ["VALUE k 0 +3\r\nabc\r\n", false, "", 0, "", null],
    ["VALUE k 0 3\r\nabcd\r\n", false, "", 0, "", null],
    ["VALUE k 0 3\r\nabc\n\n", false, "", 0, "", null],
    ["VALUEk 0 3\r\nabc\r\n", false, "", 0, "", null],
  ];
  for (const [item, valid, key, flags, data, cas] of cases) {
    // Alone, and after a plain item (the frame resumes there when fed in pieces).
    for (const before of ["", "VALUE first 1 1\r\nz\r\n"]) {
      const text = before + item + "END\r\n";
      const { p, buf, n } = parseWhole(text, Op.GETS);
      if (!valid) {
        equal(n, -1, `rejected: ${JSON.stringify(text)}`);
        continue;
      }
      equal(n, buf.length, `accepted: ${JSON.stringify(text)}`);
      const b = (before === "" ? 0 : 1) * ITEM_STRIDE;
      const it = p.items;
      equal(p.count, before === "" ? 1 : 2);
      equal(str(buf, it[b + Item.KEY_START], it[b + Item.KEY_END]), key);
      equal(it[b + Item.FLAGS], flags);
      equal(str(buf, it[b + Item.DATA_START], it[b + Item.DATA_END]), data);
      if (cas === null) equal(it[b + Item.CAS_START], -1);
      else equal(str(buf, it[b + Item.CAS_START], it[b + Item.CAS_END]), cas);
    }
  }
});
