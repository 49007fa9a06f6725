/**
 * Commands that turn a connection into something else or stream a long
 * reply: `watch` (the connection becomes a log stream) and `lru_crawler`
 * (metadump in parts; its settings in tuning.ts).
 * @module
 */

import { decodeAscii, REPLY, type Request, type Writer } from "../protocol/mod.ts";
import { metadumpClasses } from "./admin.ts";
import type { EngineBase } from "./engine.ts";
import type { Session } from "./session.ts";
import { lruCrawlerSettings } from "./tuning.ts";
import { Watcher, watchFlags } from "./watch.ts";

/** `watch [names...]` (process_watch_command): this connection becomes a log stream. */
export function watchCommand(e: EngineBase, req: Request, out: Writer, session: Session): void {
  if (e.options.watchDisabled) {
    // memcached -W; its set_noreply_maybe comes first.
    const quiet = req.ntokens > 1 && req.tokenIs(req.ntokens - 1, "noreply");
    if (!quiet) out.text("CLIENT_ERROR watch commands not allowed\r\n");
    return;
  }
  if (req.stacked) {
    out.text("ERROR cannot pipeline other commands before watch\r\n");
    return;
  }
  const args: string[] = [];
  for (let i = 1; i < req.ntokens; i++) {
    args.push(decodeAscii(req.buf, req.tokStart[i], req.tokEnd[i]));
  }
  const flags = watchFlags(args);
  if (flags < 0) {
    out.bytes(REPLY.ERROR);
    return;
  }
  const w = new Watcher(flags, e.options.startup?.watcherLogbufSize);
  if (!e.watchers.add(w)) {
    out.text("WATCHER_TOO_MANY log watcher limit reached\r\n");
    return;
  }
  session.watcher = w;
  out.bytes(REPLY.OK);
}

/** `lru_crawler metadump <classes>` (streamed through `session.more`), else its settings. */
export function lruCrawlerCommand(
  e: EngineBase,
  req: Request,
  out: Writer,
  session: Session,
): void {
  if (req.ntokens === 3 && req.tokenIs(1, "metadump")) {
    const classes = metadumpClasses(req, 2);
    if (!e.tunables.set.lruCrawler) out.text("CLIENT_ERROR lru crawler disabled\r\n");
    else if (e.options.startup?.dumpEnabled === false) out.text("ERROR metadump not allowed\r\n");
    else if (req.stacked) out.text("ERROR cannot pipeline other commands before metadump\r\n");
    else if (classes === null) out.bytes(REPLY.BAD_CLASS);
    else if (!classes.includes(1)) out.bytes(REPLY.NOT_STARTED);
    else {
      session.more = metadump(e, classes);
      if (session.more(out) === true) session.more = null;
    }
    return;
  }
  lruCrawlerSettings(req, out, e.tunables, () => {
    const classes = metadumpClasses(req, 2);
    if (classes === null) return "bad";
    if (!classes.includes(1)) return "none";
    // memcached's crawler thread does this soon after; here it is done before the reply.
    e.store.crawl(classes);
    return "ok";
  });
}

/**
 * `lru_crawler metadump`: one line per live item, keys URI-encoded, then
 * END; produced a few thousand items per call (store.scan resumes).
 */
function metadump(e: EngineBase, classes: Uint8Array): (out: Writer) => boolean {
  const store = e.store;
  const start = e.clock.processStartUnix;
  let cursor = 0;
  return (out) => {
    cursor = store.scan(cursor, 4096, (h) => {
      if (classes[store.slabClass(h)] !== 1) return;
      const buf = store.buffer(h), ko = store.keyOffset(h), kl = store.keyLength(h);
      out.text("key=");
      uriEncode(out, buf, ko, ko + kl);
      const exp = store.exptime(h);
      out.text(
        ` exp=${exp === 0 ? -1 : exp + start} la=${store.lastAccess(h) + start} cas=${
          e.clientCas(h)
        } fetch=${store.fetched(h) ? "yes" : "no"} cls=${store.slabClass(h)} size=${
          store.itemSize(h)
        }\n`,
      );
    });
    if (cursor >= 0) return false;
    out.bytes(REPLY.END);
    return true;
  };
}

/** memcached's uriencode: keep [A-Za-z0-9-._~], %XX the rest. */
function uriEncode(out: Writer, buf: Uint8Array, start: number, end: number): void {
  const hex = "0123456789ABCDEF";
  for (let i = start; i < end; i++) {
    const c = buf[i];
    const plain = (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) ||
      c === 45 ||
      c === 46 || c === 95 || c === 126;
    if (plain) out.byte(c);
    else {
      out.byte(37);
      out.byte(hex.charCodeAt(c >> 4));
      out.byte(hex.charCodeAt(c & 15));
    }
  }
}
