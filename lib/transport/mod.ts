/**
 * Transport, below the protocol: receive buffers and socket chores shared by
 * the server, the proxy and the replication link (twemproxy keeps the same
 * split between connection handling and protocol parsing).
 * @module
 */

export { closeQuietly, errorText, type HostPort, isDisconnect, writeAll } from "./conn.ts";
export { BufferPool, type Readable, ReadBuffer, topUp } from "./read_buffer.ts";
export { BURST, BurstTrim, loadCollector, QUIET_MS, trimHeap } from "./burst_trim.ts";
export { type BindOptions, isTlsConn, listenTcp, type TlsMaterial } from "./tls.ts";
export { listenUnix } from "./unix.ts";
export { RAW_OPS, type RawIo, rawIo } from "./raw_io.ts";
export {
  bindDatagrams,
  bindListeners,
  type BoundListeners,
  closeListeners,
  DEFAULT_UNIX_MASK,
  dualStack,
  type ListenAddress,
  type ListenPlan,
} from "./listen.ts";
