/**
 * The link handshake: protocol version, node ids, shared-secret
 * authentication of both sides, each side's stream state, and the keys
 * that authenticate the stream after it (seal.ts).
 *
 * ```
 * acceptor:  MEMREP-REPL 4 <nodeA> <nonceA>      at once, nothing keyed
 * connector: MEMREP-REPL 4 <nodeC> <nonceC>      at once, nothing keyed
 * connector: STATE <stream> <end> <peer stream | -> <peer offset> <items> <hlc>
 * connector: AUTH <proofC | ->                   (after the acceptor's greeting)
 * acceptor:  STATE ...                           (only once proofC checked out,
 * acceptor:  AUTH <proofA | ->                    else ERR auth and close)
 * ```
 * The connector proves first: the acceptor, which anyone who reaches the
 * port can talk to, sends nothing keyed before it has checked proofC, so
 * it is no oracle for guessing the secret offline. proofC is
 * HMAC-SHA256(secret, "connect" | both greetings | the connector's STATE),
 * proofA the same over "accept" | all of that | the acceptor's STATE |
 * proofC: fresh nonces from both sides and the direction label, so a
 * recorded or reflected proof is useless, and the STATE lines cannot be
 * altered on the way. A wrong, missing or unexpected proof gets
 * `ERR auth` and the connection is closed. Anything that is not a memrep
 * peer gets closed after its first line (or silence).
 * @module
 */

import { createHmac, timingSafeEqual } from "node:crypto";
import { decodeAscii, parseDecimal, Request, tokenizeReplLine } from "../protocol/mod.ts";
import { errorText } from "../transport/mod.ts";
import { parseVersion } from "./stream.ts";
import { deriveLinkKeys, type LinkKeys } from "./seal.ts";

/** Wire protocol version; a peer speaking another one is refused. */
export const PROTOCOL_VERSION = 4;
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
  /**
   * This node's state at the moment it is sent, for the peer `peerNode`
   * (from its greeting); null: not now (the peer is told `ERR busy` and
   * tries again later).
   */
  state(peerNode: string): StreamState | null;
  /** Called once the peer's greeting arrived and is valid (not an idle connection). */
  greeted?: () => void;
}

/** Why a handshake failed. */
export type HandshakeFailure =
  | "auth" // wrong or missing secret (either side)
  | "not-memrep" // the other end is not a memrep replication port
  | "self" // connected to ourselves
  | "timeout"
  | "closed"
  | "busy" // the peer cannot link now (a group member in the middle of its first full copy)
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
    /** Keys that authenticate the stream (null without a secret: plain stream). */
    keys: LinkKeys | null;
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

/** HMAC-SHA256 of a handshake message in hex; "-" without a secret. */
function proof(secret: string | undefined, message: string): string {
  return secret ? createHmac("sha256", secret).update(message).digest("hex") : "-";
}

function stateLine(s: StreamState): string {
  return `STATE ${s.streamId} ${s.streamEnd} ${s.knownStream} ${s.knownOffset} ${s.items} ${s.hlc}`;
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

/** Check a peer's proof against ours (constant time); null when fine, else why not. */
function checkProof(secret: string | undefined, got: string, message: string): string | null {
  if (!secret) return got === "-" ? null : "the peer has a secret and this node has none";
  if (got === "-") return "the peer has no secret";
  const want = new TextEncoder().encode(proof(secret, message));
  const have = new TextEncoder().encode(got);
  return have.length === want.length && timingSafeEqual(have, want) ? null : "wrong secret";
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
  const refuse = (why: string) => send(`ERR ${why}\r\n`).catch(() => {});
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
      const reason: HandshakeFailure = t[1] === "auth"
        ? "auth"
        : t[1] === "self"
        ? "self"
        : t[1] === "busy"
        ? "busy"
        : "refused";
      return fail(reason, `peer said ${t.join(" ")}`);
    }
    return t;
  };
  // Both greetings go out at once: neither carries anything keyed.
  const greeting = `${MAGIC} ${PROTOCOL_VERSION} ${ctx.nodeId} ${randomHex(16)}`;
  await send(greeting + "\r\n");
  const hello = await read();
  if (!Array.isArray(hello)) return hello;
  if (hello.length !== 4 || hello[0] !== MAGIC) return fail("not-memrep", "unexpected greeting");
  if (hello[1] !== String(PROTOCOL_VERSION)) {
    if (role === "accept") await refuse("version");
    return fail("refused", `peer speaks protocol ${hello[1]}`);
  }
  const peerNode = hello[2];
  if (peerNode === ctx.nodeId) {
    if (role === "accept") await refuse("self");
    return fail("self", "connected to itself");
  }
  ctx.greeted?.();
  const peerGreeting = hello.join(" ");
  // The transcript starts with the acceptor's greeting, then the connector's.
  const greetings = role === "accept"
    ? `${greeting}\n${peerGreeting}`
    : `${peerGreeting}\n${greeting}`;
  const secret = ctx.secret;
  const keys = (): LinkKeys | null =>
    secret ? deriveLinkKeys(secret, greetings, role === "connect") : null;
  // Either side reads the other's STATE line, then its AUTH proof.
  const readStateAndProof = async (): Promise<
    { st: string[]; peer: StreamState; theirProof: string } | HandshakeResult
  > => {
    const st = await read();
    if (!Array.isArray(st)) return st;
    const peer = parseState(st);
    if (!peer) return fail("not-memrep", "bad STATE line");
    const auth = await read();
    if (!Array.isArray(auth)) return auth;
    if (auth.length !== 2 || auth[0] !== "AUTH") return fail("not-memrep", "expected AUTH");
    return { st, peer, theirProof: auth[1] };
  };

  if (role === "connect") {
    const state = ctx.state(peerNode);
    if (state === null) {
      await refuse("busy");
      return fail("busy", "not linking now");
    }
    const mine = stateLine(state);
    const proofC = proof(secret, `connect\n${greetings}\n${mine}`);
    await send(`${mine}\r\nAUTH ${proofC}\r\n`);
    const theirs = await readStateAndProof();
    if (!("st" in theirs)) return theirs;
    const { st, peer } = theirs;
    const bad = checkProof(
      secret,
      theirs.theirProof,
      `accept\n${greetings}\n${mine}\n${st.join(" ")}\n${proofC}`,
    );
    if (bad) {
      await refuse("auth");
      return fail("auth", bad);
    }
    return { ok: true, peerNode, peer, rest: reader.rest(), keys: keys() };
  }
  const got = await readStateAndProof();
  if (!("st" in got)) return got;
  const { peer, theirProof } = got;
  const theirs = got.st.join(" ");
  const bad = checkProof(secret, theirProof, `connect\n${greetings}\n${theirs}`);
  if (bad) {
    await refuse("auth");
    return fail("auth", bad);
  }
  const state = ctx.state(peerNode);
  if (state === null) {
    await refuse("busy");
    return fail("busy", "not linking now");
  }
  const mine = stateLine(state);
  const proofA = proof(secret, `accept\n${greetings}\n${theirs}\n${mine}\n${theirProof}`);
  await send(`${mine}\r\nAUTH ${proofA}\r\n`);
  return { ok: true, peerNode, peer, rest: reader.rest(), keys: keys() };
}

/** Write a short ASCII text completely. */
async function writeText(conn: Deno.Conn, text: string): Promise<void> {
  const b = new TextEncoder().encode(text);
  let off = 0;
  while (off < b.length) off += await conn.write(b.subarray(off));
}
