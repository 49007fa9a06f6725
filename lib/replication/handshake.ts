/**
 * The link handshake: protocol version, node ids, shared-secret
 * authentication of both sides, then each side's stream state.
 *
 * ```
 * connector: MEMREP-REPL 1 <node> <nonceC>
 * acceptor:  MEMREP-REPL 1 <node> <nonceA> <proofA | ->
 * connector: AUTH <proofC | ->
 * connector: STATE <stream> <end> <peer stream | -> <peer offset> <items> <hlc>
 *            (or ERR auth when proofA is wrong)
 * acceptor:  STATE ...                  (after checking proofC)
 * ```
 * A proof is HMAC-SHA256(secret, role|nonceC|nonceA|nodeC|nodeA) in hex
 * (crypto.subtle): fresh nonces from both sides and the role in the
 * message, so a recorded or reflected proof is useless. A wrong, missing or
 * unexpected proof gets `ERR auth` and the connection is closed. Anything
 * that is not a memrep peer gets closed after its first line (or silence).
 * @module
 */

import { decodeAscii, Request, tokenizeReplLine } from "../protocol/mod.ts";
import { parseDecimal } from "../protocol/bytes.ts";
import { errorText } from "../transport/mod.ts";
import { parseVersion } from "./stream.ts";

/** Wire protocol version; a peer speaking another one is refused. */
export const PROTOCOL_VERSION = 1;
const MAGIC = "MEMREP-REPL";
const MAX_LINE = 1024;

/** A node's stream state, exchanged after authentication. */
export interface StreamState {
  /** Id of the node's change stream (new at every start). */
  streamId: string;
  /** The node's stream position. */
  streamEnd: number;
  /** Stream of the peer this node has applied, or "-" (none, or a copy was cut short). */
  knownStream: string;
  /** Offset of that stream applied so far. */
  knownOffset: number;
  /** Items the node holds. */
  items: number;
  /** The node's clock (versions), so the receiver's next writes are newer. */
  hlc: number;
}

/** What the handshake needs from this node. */
export interface HandshakeContext {
  /** This node's id. */
  nodeId: string;
  /** Shared secret, if any. */
  secret?: string;
  /** Give up after this long (ms). */
  timeoutMs: number;
  /** This node's state at the moment it is sent. */
  state(): StreamState;
}

/** Why a handshake failed. */
export type HandshakeFailure =
  | "auth" // wrong or missing secret (either side)
  | "not-memrep" // the other end is not a memrep replication port
  | "self" // connected to ourselves
  | "timeout"
  | "closed"
  | "refused"; // the peer said ERR, or speaks another protocol version

/** Result of {@linkcode handshake}. */
export type HandshakeResult =
  | {
    ok: true;
    /** The peer's node id. */
    peerNode: string;
    /** The peer's stream state. */
    peer: StreamState;
    /** Bytes read past the handshake (the start of the peer's stream). */
    rest: Uint8Array;
  }
  | { ok: false; reason: HandshakeFailure; detail: string };

/** Reads "\n"-terminated lines from a connection, keeping what follows. */
class LineReader {
  #conn: Deno.Conn;
  #buf = new Uint8Array(16384);
  #start = 0;
  #end = 0;
  #req = new Request();

  constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }

  /** Next line's tokens as strings; null at EOF, "long" for an overlong line. */
  async tokens(): Promise<string[] | null | "long"> {
    for (;;) {
      const nl = this.#buf.indexOf(10, this.#start);
      if (nl >= 0 && nl < this.#end) {
        const lineEnd = nl > this.#start && this.#buf[nl - 1] === 13 ? nl - 1 : nl;
        const req = this.#req;
        tokenizeReplLine(this.#buf, this.#start, lineEnd, req);
        const out: string[] = [];
        for (let i = 0; i < req.ntokens; i++) {
          out.push(decodeAscii(this.#buf, req.tokStart[i], req.tokEnd[i]));
        }
        this.#start = nl + 1;
        return out;
      }
      if (this.#end - this.#start > MAX_LINE) return "long";
      if (this.#end === this.#buf.length) {
        this.#buf.copyWithin(0, this.#start, this.#end);
        this.#end -= this.#start;
        this.#start = 0;
      }
      const n = await this.#conn.read(this.#buf.subarray(this.#end));
      if (n === null) return null;
      this.#end += n;
    }
  }

  /** Unread bytes (a copy). */
  rest(): Uint8Array {
    return this.#buf.slice(this.#start, this.#end);
  }
}

/** Random bytes as hex. */
export function randomHex(bytes: number): string {
  const b = crypto.getRandomValues(new Uint8Array(bytes));
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

const keys = new Map<string, Promise<CryptoKey>>();

async function proof(secret: string | undefined, message: string): Promise<string> {
  if (!secret) return "-";
  let key = keys.get(secret);
  if (!key) {
    key = crypto.subtle.importKey(
      "raw",
      new TextEncoder().encode(secret),
      { name: "HMAC", hash: "SHA-256" },
      false,
      ["sign"],
    );
    keys.set(secret, key);
  }
  const mac = await crypto.subtle.sign("HMAC", await key, new TextEncoder().encode(message));
  return Array.from(new Uint8Array(mac), (x) => x.toString(16).padStart(2, "0")).join("");
}

/** Constant-time string comparison (proofs). */
function sameText(a: string, b: string): boolean {
  let diff = a.length ^ b.length;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i % (b.length || 1));
  return diff === 0;
}

function stateLine(s: StreamState): string {
  return `STATE ${s.streamId} ${s.streamEnd} ${s.knownStream} ${s.knownOffset} ${s.items} ${s.hlc}\r\n`;
}

/**
 * The peer's STATE line, or null when it is not one. The clock is parsed
 * as a version (digits beyond 2**53 give Infinity): whether to follow it is
 * the replicator's call, and refusing the pairing over it would keep the
 * pair split for good.
 */
function parseState(t: string[]): StreamState | null {
  if (t.length !== 7 || t[0] !== "STATE") return null;
  const nums = [t[2], t[4], t[5], t[6]].map((x, i) => {
    const b = new TextEncoder().encode(x);
    return (i === 3 ? parseVersion : parseDecimal)(b, 0, b.length);
  });
  if (nums.some((n) => n < 0)) return null;
  return {
    streamId: t[1],
    streamEnd: nums[0],
    knownStream: t[3],
    knownOffset: nums[1],
    items: nums[2],
    hlc: nums[3],
  };
}

/** Check a peer's proof against ours; null when fine, else why not. */
async function checkProof(
  secret: string | undefined,
  got: string,
  message: string,
): Promise<string | null> {
  if (!secret) return got === "-" ? null : "the peer has a secret and this node has none";
  if (got === "-") return "the peer has no secret";
  return sameText(got, await proof(secret, message)) ? null : "wrong secret";
}

/**
 * Run the handshake on a fresh connection as `connect` (we dialled) or
 * `accept`. Never throws; closes nothing (the caller closes on failure).
 */
export async function handshake(
  conn: Deno.Conn,
  role: "connect" | "accept",
  ctx: HandshakeContext,
): Promise<HandshakeResult> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<HandshakeResult>((resolve) => {
    timer = setTimeout(
      () => resolve({ ok: false, reason: "timeout", detail: "no answer in time" }),
      ctx.timeoutMs,
    );
  });
  // The losing side of the race must not leave an unhandled rejection behind.
  const work = run(conn, role, ctx).catch((err): HandshakeResult => ({
    ok: false,
    reason: "closed",
    detail: errorText(err),
  }));
  try {
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

async function run(
  conn: Deno.Conn,
  role: "connect" | "accept",
  ctx: HandshakeContext,
): Promise<HandshakeResult> {
  const reader = new LineReader(conn);
  const send = (text: string) => writeText(conn, text);
  const fail = (reason: HandshakeFailure, detail: string): HandshakeResult => ({
    ok: false,
    reason,
    detail,
  });
  const read = async (): Promise<string[] | HandshakeResult> => {
    const t = await reader.tokens();
    if (t === null) return fail("closed", "connection closed during the handshake");
    if (t === "long") return fail("not-memrep", "overlong line");
    if (t[0] === "ERR") {
      const reason = t[1] === "auth" ? "auth" : t[1] === "self" ? "self" : "refused";
      return fail(reason, `peer said ${t.join(" ")}`);
    }
    return t;
  };
  const nonce = randomHex(16);
  if (role === "connect") {
    await send(`${MAGIC} ${PROTOCOL_VERSION} ${ctx.nodeId} ${nonce}\r\n`);
    const hello = await read();
    if (!Array.isArray(hello)) return hello;
    if (hello.length !== 5 || hello[0] !== MAGIC) return fail("not-memrep", "unexpected greeting");
    if (hello[1] !== String(PROTOCOL_VERSION)) {
      return fail("refused", `peer speaks protocol ${hello[1]}`);
    }
    const [, , peerNode, peerNonce, peerProof] = hello;
    if (peerNode === ctx.nodeId) return fail("self", "connected to itself");
    const message = `|${nonce}|${peerNonce}|${ctx.nodeId}|${peerNode}`;
    // Our proof goes first either way, so the acceptor can log precisely what is wrong.
    const auth = `AUTH ${await proof(ctx.secret, "connect" + message)}\r\n`;
    const bad = await checkProof(ctx.secret, peerProof, "accept" + message);
    if (bad) {
      await send(auth + "ERR auth\r\n").catch(() => {});
      return fail("auth", bad);
    }
    await send(auth + stateLine(ctx.state()));
    const st = await read();
    if (!Array.isArray(st)) return st;
    const peer = parseState(st);
    if (!peer) return fail("not-memrep", "bad STATE line");
    return { ok: true, peerNode, peer, rest: reader.rest() };
  }
  const hello = await read();
  if (!Array.isArray(hello)) return hello;
  if (hello.length !== 4 || hello[0] !== MAGIC) return fail("not-memrep", "unexpected greeting");
  if (hello[1] !== String(PROTOCOL_VERSION)) {
    await send("ERR version\r\n").catch(() => {});
    return fail("refused", `peer speaks protocol ${hello[1]}`);
  }
  const [, , peerNode, peerNonce] = hello;
  if (peerNode === ctx.nodeId) {
    await send("ERR self\r\n").catch(() => {});
    return fail("self", "connected to itself");
  }
  const message = `|${peerNonce}|${nonce}|${peerNode}|${ctx.nodeId}`;
  await send(
    `${MAGIC} ${PROTOCOL_VERSION} ${ctx.nodeId} ${nonce} ${await proof(
      ctx.secret,
      "accept" + message,
    )}\r\n`,
  );
  const auth = await read();
  if (!Array.isArray(auth)) return auth;
  if (auth.length !== 2 || auth[0] !== "AUTH") return fail("not-memrep", "expected AUTH");
  const bad = await checkProof(ctx.secret, auth[1], "connect" + message);
  if (bad) {
    await send("ERR auth\r\n").catch(() => {});
    return fail("auth", bad);
  }
  const st = await read();
  if (!Array.isArray(st)) return st;
  const peer = parseState(st);
  if (!peer) return fail("not-memrep", "bad STATE line");
  await send(stateLine(ctx.state()));
  return { ok: true, peerNode, peer, rest: reader.rest() };
}

/** Write a short ASCII text completely. */
async function writeText(conn: Deno.Conn, text: string): Promise<void> {
  const b = new TextEncoder().encode(text);
  let off = 0;
  while (off < b.length) off += await conn.write(b.subarray(off));
}
