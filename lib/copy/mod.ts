/**
 * `memrep replicate`: copy items between memcached-protocol servers and
 * dump files.
 * @module
 */

export {
  type Endpoint,
  keyMatcher,
  replicate,
  type ReplicateOptions,
  type ReplicateResult,
} from "./replicate.ts";
export {
  type CopySummary,
  Progress,
  type ProgressCounts,
  type ProgressOptions,
  summaryLine,
} from "./progress.ts";
export {
  CopyError,
  type CopyItem,
  FileSource,
  ServerSource,
  type Source,
  type SourceCounts,
} from "./source.ts";
export { type CopyMode, DumpTarget, Outcome, ServerTarget, type Target } from "./target.ts";
export {
  DUMP_MAGIC,
  DumpError,
  type DumpItem,
  type DumpMeta,
  DumpReader,
  DumpWriter,
} from "./dump_format.ts";
export { crc32 } from "./crc32.ts";
