/**
 * The memcached protocol codec shared by server, proxy, client and copier:
 * request parsing (text, meta and binary), reply constants, byte helpers and key rules.
 * @module
 */

export { META_MAX_OPAQUE } from "./meta_parser.ts";
export { Op, type OpCode, textTransmits } from "./ops.ts";
export { parseRequest, tokenizeReplLine } from "./parser.ts";
export { PARSE_CLOSE, Request } from "./request.ts";
export {
  BINARY_PROTOCOL_VERSION,
  PROTOCOL_VERSION,
  REPLY,
  REPLY_TEXT,
  type ReplyName,
} from "./replies.ts";
export {
  BINARY_HEADER_LENGTH,
  BINARY_REQUEST_MAGIC,
  BINARY_RESPONSE_MAGIC,
  BINARY_SASL_MAX_MECH,
  BINARY_STATUS_TEXT,
  BinaryOpcode,
  BinaryRequest,
  BinaryStatus,
  NO_AUTOVIVIFY,
  parseBinaryRequest,
  writeBinaryError,
  writeBinaryHeader,
  writeBinaryStat,
  writeBinaryStatLines,
  writeBinaryU32,
  writeBinaryU64,
} from "./binary.ts";
export { Writer, WriterPool } from "./writer.ts";
export {
  ascii,
  carve,
  carveCopy,
  decodeAscii,
  isSpace,
  LF,
  parseDecimal,
  parseDecimalBigInt,
  parseI32,
  parseU32,
  parseU64,
  writeUint,
} from "./bytes.ts";
export {
  base64Decode,
  base64Encode,
  base64Key,
  base64Length,
  isTextKey,
  MAX_KEY_LENGTH,
} from "./keys.ts";
export { type DumpEntry, parseDumpEntry, urlDecodeBytes } from "./dump_entry.ts";
export {
  isErrorKind,
  Item,
  ITEM_STRIDE,
  NO_TTL,
  REPLY_KIND_NAME,
  ReplyKind,
  type ReplyKindCode,
} from "./reply_kind.ts";
export { ReplyParser } from "./response.ts";
