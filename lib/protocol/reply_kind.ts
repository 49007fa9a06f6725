/**
 * What a parsed server reply is ({@linkcode ReplyKind}) and how its VALUE
 * items are laid out ({@linkcode Item}): the vocabulary ReplyParser fills
 * and its readers (lib/client) read.
 * @module
 */

/** What a reply frame is. */
export const ReplyKind = {
  /** Not parsed yet, or the last frame was invalid. */
  NONE: 0,
  /** get-family reply: `VALUE` items then `END` (0 items: all misses). */
  VALUES: 1,
  STORED: 2,
  NOT_STORED: 3,
  EXISTS: 4,
  NOT_FOUND: 5,
  DELETED: 6,
  TOUCHED: 7,
  OK: 8,
  /** incr/decr result; the digits are `textStart..textEnd`. */
  NUMBER: 9,
  /** `STAT` lines (or other lines, e.g. `stats cachedump`) then `END`. */
  STATS: 10,
  /** `VERSION <text>`; the text is `textStart..textEnd`. */
  VERSION: 11,
  /** Meta value: `VA <size> <flags>*` and its data block. */
  VA: 12,
  HD: 13,
  NS: 14,
  EX: 15,
  NF: 16,
  EN: 17,
  MN: 18,
  /** Meta debug `ME <key> <k>=<v>*`; the rest of the line is `textStart..textEnd`. */
  ME: 19,
  ERROR: 20,
  CLIENT_ERROR: 21,
  SERVER_ERROR: 22,
  /** `lru_crawler metadump` lines then `END`; each line is an item (key range = line). */
  DUMP: 23,
  /** One non-final line of a dump (only from `ReplyParser.parseDumpLine`). */
  DUMP_LINE: 24,
  /** `BUSY <text>` (lru_crawler). */
  BUSY: 25,
  /** `BADCLASS <text>` (lru_crawler). */
  BADCLASS: 26,
  /** `RESET` (stats reset). */
  RESET: 27,
  /** A line memrep does not know, accepted only for requests whose reply is free-form. */
  LINE: 28,
} as const;

/** One of the values of {@linkcode ReplyKind}. */
export type ReplyKindCode = typeof ReplyKind[keyof typeof ReplyKind];

/** Names of reply kinds, for messages. */
export const REPLY_KIND_NAME: readonly string[] = Object.keys(ReplyKind);

/** True for `ERROR`, `CLIENT_ERROR` and `SERVER_ERROR`. */
export function isErrorKind(kind: number): boolean {
  return kind >= ReplyKind.ERROR && kind <= ReplyKind.SERVER_ERROR;
}

/**
 * Layout of one item in `ReplyParser.items`: `ITEM_STRIDE` numbers
 * per item, at these offsets. VALUE items fill all; STAT lines fill KEY (the
 * name) and DATA (the value); dump lines fill KEY (the whole line).
 * CAS_START is -1 when the item has no CAS.
 */
export const Item = {
  KEY_START: 0,
  KEY_END: 1,
  FLAGS: 2,
  DATA_START: 3,
  DATA_END: 4,
  CAS_START: 5,
  CAS_END: 6,
} as const;

/** Numbers per item in `ReplyParser.items`. */
export const ITEM_STRIDE = 8;

/** `ReplyParser.ttl` when the reply carried no `t` flag. */
export const NO_TTL: number = -2;
