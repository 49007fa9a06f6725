/**
 * The client's request kinds (get, set, ... as typed results) over its
 * {@linkcode Pipeline}, and how one is opened (dial, optional login).
 * @module
 */

import { ascii, Op, type OpCode, ReplyKind } from "../protocol/mod.ts";
import { CRLF, line } from "./command_line.ts";
import { type ClientOptions, dial, serverName } from "./dial.ts";
import { ClientError, ReplyError } from "./errors.ts";
import { Pipeline } from "./pipeline.ts";
import type { Reply, ValueItem } from "./reply.ts";

/** A key: a string (UTF-8 encoded) or raw bytes. */
export type Key = string | Uint8Array;

/** A stored item as returned by get/gets. */
export interface Item {
  /** Value bytes (a view into the reply copy). */
  value: Uint8Array;
  /** Client flags. */
  flags: number;
  /** CAS (gets only). */
  cas?: bigint;
}

function keyBytes(key: Key): Uint8Array {
  return typeof key === "string" ? ascii(key) : key;
}

/** A pipelined connection to one memcached-protocol server. */
export class Client extends Pipeline {
  /** Connects with TCP_NODELAY; rejects with a {@linkcode ClientError} naming the server. */
  static async connect(host: string, port: number, options: ClientOptions = {}): Promise<Client> {
    const server = serverName(host, port);
    const conn = await dial(host, port, server, options);
    const client = new Client(conn, server, options);
    if (options.login) await client.#login(options.login);
    return client;
  }

  async #login(login: { user: string; password: string }): Promise<void> {
    const token = new TextEncoder().encode(`${login.user} ${login.password}`);
    const head = new TextEncoder().encode(`set auth 0 0 ${token.length}\r\n`);
    const bytes = new Uint8Array(head.length + token.length + 2);
    bytes.set(head);
    bytes.set(token, head.length);
    bytes.set([13, 10], head.length + token.length);
    let line: string;
    try {
      line = (await this.request(bytes, Op.SET)).line;
    } catch (err) {
      this.close();
      throw err;
    }
    if (line !== "STORED") {
      this.close();
      throw new ClientError("auth", this.server, `login as ${login.user} refused: ${line}`);
    }
  }

  // ---- conveniences ---------------------------------------------------

  async #expect(op: OpCode, ...parts: Uint8Array[]): Promise<Reply> {
    const reply = await this.requestParts(op, ...parts);
    if (reply.isError) throw new ReplyError(this.server, reply);
    return reply;
  }

  async #retrieve(
    op: OpCode,
    word: string,
    keys: Key | readonly Key[],
  ): Promise<Map<string, Item>> {
    const list = Array.isArray(keys) ? keys as readonly Key[] : [keys as Key];
    const reply = await this.#expect(op, line(word, ...list.map(keyBytes)));
    const out = new Map<string, Item>();
    for (const it of reply.items()) out.set(it.key, toItem(it));
    return out;
  }

  /** `get <keys>`: hits by key. */
  get(keys: Key | readonly Key[]): Promise<Map<string, Item>> {
    return this.#retrieve(Op.GET, "get", keys);
  }

  /** `gets <keys>`: hits by key, with CAS. */
  gets(keys: Key | readonly Key[]): Promise<Map<string, Item>> {
    return this.#retrieve(Op.GETS, "gets", keys);
  }

  /** `get <key>` for one key: the item or undefined. */
  async getOne(key: Key): Promise<Item | undefined> {
    const reply = await this.#expect(Op.GET, line("get", keyBytes(key)));
    if (reply.count === 0) return undefined;
    return { value: reply.itemValue(0), flags: reply.itemFlags(0) };
  }

  async #store(
    op: OpCode,
    word: string,
    key: Key,
    value: Uint8Array,
    flags: number,
    exptime: number,
    noreply: boolean,
    cas?: bigint,
  ): Promise<boolean> {
    const head = cas === undefined
      ? line(word, keyBytes(key), flags, exptime, value.length, ...(noreply ? ["noreply"] : []))
      : line(
        word,
        keyBytes(key),
        flags,
        exptime,
        value.length,
        String(cas),
        ...(noreply ? ["noreply"] : []),
      );
    if (noreply) {
      this.send(head, value, CRLF);
      return true;
    }
    const reply = await this.#expect(op, head, value, CRLF);
    return reply.kind === ReplyKind.STORED;
  }

  /** `set`: true when STORED. With `noreply`, resolves true once queued. */
  set(key: Key, value: Uint8Array, flags = 0, exptime = 0, noreply = false): Promise<boolean> {
    return this.#store(Op.SET, "set", key, value, flags, exptime, noreply);
  }

  /** `add`: true when STORED, false when the key exists. */
  add(key: Key, value: Uint8Array, flags = 0, exptime = 0, noreply = false): Promise<boolean> {
    return this.#store(Op.ADD, "add", key, value, flags, exptime, noreply);
  }

  /** `replace`: true when STORED, false when the key is missing. */
  replace(key: Key, value: Uint8Array, flags = 0, exptime = 0, noreply = false): Promise<boolean> {
    return this.#store(Op.REPLACE, "replace", key, value, flags, exptime, noreply);
  }

  /** `cas`: true when STORED, false on EXISTS / NOT_FOUND. */
  cas(key: Key, value: Uint8Array, cas: bigint, flags = 0, exptime = 0): Promise<boolean> {
    return this.#store(Op.CAS, "cas", key, value, flags, exptime, false, cas);
  }

  /** `delete`: true when DELETED. */
  async delete(key: Key): Promise<boolean> {
    const reply = await this.#expect(Op.DELETE, line("delete", keyBytes(key)));
    return reply.kind === ReplyKind.DELETED;
  }

  /** `incr`: the new value, or undefined when the key is missing. */
  async incr(key: Key, delta: number | bigint = 1): Promise<bigint | undefined> {
    const reply = await this.#expect(Op.INCR, line("incr", keyBytes(key), String(delta)));
    return reply.number;
  }

  /** `decr`: the new value, or undefined when the key is missing. */
  async decr(key: Key, delta: number | bigint = 1): Promise<bigint | undefined> {
    const reply = await this.#expect(Op.DECR, line("decr", keyBytes(key), String(delta)));
    return reply.number;
  }

  /** `touch`: true when TOUCHED. */
  async touch(key: Key, exptime: number): Promise<boolean> {
    const reply = await this.#expect(Op.TOUCH, line("touch", keyBytes(key), exptime));
    return reply.kind === ReplyKind.TOUCHED;
  }

  /** `mg <key> <flags>`, e.g. `mg(key, "v f t")`; the raw reply (VA, HD, EN, ...). */
  mg(key: Key, flags = ""): Promise<Reply> {
    const head = flags === "" ? line("mg", keyBytes(key)) : line("mg", keyBytes(key), flags);
    return this.#expect(Op.MG, head);
  }

  /** `ms <key> <len> <flags>` + value, e.g. `ms(key, v, "F5 T60")`; the raw reply. */
  ms(key: Key, value: Uint8Array, flags = ""): Promise<Reply> {
    const head = flags === ""
      ? line("ms", keyBytes(key), value.length)
      : line("ms", keyBytes(key), value.length, flags);
    return this.#expect(Op.MS, head, value, CRLF);
  }

  /** `stats [group]` as a map. */
  async stats(group?: string): Promise<Map<string, string>> {
    const reply = await this.#expect(Op.STATS, group ? line("stats", group) : line("stats"));
    return reply.stats();
  }

  /** `version`: the server's version text. */
  async version(): Promise<string> {
    return (await this.#expect(Op.VERSION, line("version"))).text;
  }

  /** `flush_all [delay]`. */
  async flushAll(delay?: number): Promise<void> {
    await this.#expect(
      Op.FLUSH_ALL,
      delay === undefined ? line("flush_all") : line("flush_all", delay),
    );
  }
}

function toItem(it: ValueItem): Item {
  const item: Item = { value: it.value, flags: it.flags };
  if (it.cas !== undefined) item.cas = it.cas;
  return item;
}
