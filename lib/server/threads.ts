/**
 * Multi-threaded serve: thread 0 (the caller) and N-1 workers each accept
 * on the same port (SO_REUSEPORT) and run requests on one shared cache,
 * one batch at a time under a shared lock. Socket work, the larger part of
 * the cost, then runs on every core.
 * @module
 */

import type { ClockOrigin } from "./clock.ts";
import type { EngineShared } from "./commands.ts";
import type { Server, ServerOptions } from "./listener.ts";
import type { ReplicationShare } from "../replication/threads.ts";

/** What a worker thread needs to join. */
export interface ThreadInit {
  /** The listener and engine options. */
  options: ServerOptions;
  /** Shared cache, lock and counters, with the worker's row. */
  shared: EngineShared;
  /** The main thread's clock origin. */
  origin: ClockOrigin;
  /** Replication's shared state, when serve replicates. */
  replication?: ReplicationShare;
}

/** A worker's answer to its init. */
export type ThreadMessage =
  | { type: "ready" }
  | { type: "error"; message: string }
  | { type: "stopped" };

/** Longest a worker may take to stop before it is terminated (ms). */
const STOP_WAIT_MS = 2000;

/** The running workers. */
export interface Threads {
  /**
   * Resolves once every worker stopped serving after `server` stopped (no
   * request runs on them any more), or was terminated after a bounded wait.
   */
  stopped: Promise<void>;
}

/**
 * Start `threads - 1` workers next to `server` (already listening with
 * reusePort); resolves once all listen. Stopping `server` stops them.
 */
export async function startThreads(
  server: Server,
  options: ServerOptions,
  threads: number,
  replication?: ReplicationShare,
): Promise<Threads> {
  const shared = server.engine.share(threads);
  const origin = server.engine.clock.origin;
  // Functions do not cross threads; workers get replication's hooks from `replication`.
  const { extraStats: _e, statsGroups: _g, ...plain } = options;
  const options0 = { ...plain, port: server.port };
  const workers: Worker[] = [];
  const stopped: Promise<void>[] = [];
  try {
    for (let t = 1; t < threads; t++) {
      const worker = new Worker(new URL("./worker.ts", import.meta.url).href, { type: "module" });
      workers.push(worker);
      const done = Promise.withResolvers<void>();
      stopped.push(done.promise);
      const ready = new Promise<void>((resolve, reject) => {
        worker.onmessage = (e: MessageEvent<ThreadMessage>) => {
          if (e.data.type === "ready") resolve();
          else if (e.data.type === "error") reject(new Error(e.data.message));
          else {
            done.resolve();
            server.stop(); // (`shutdown` arrived on that thread: stop them all)
          }
        };
        worker.onerror = (e) => {
          e.preventDefault();
          reject(new Error(e.message));
        };
      });
      const init: ThreadInit = {
        options: { ...options0, reusePort: true },
        shared: { ...shared, thread: t },
        origin,
        replication,
      };
      worker.postMessage(init);
      await ready;
    }
  } catch (err) {
    for (const w of workers) w.terminate();
    throw err;
  }
  const all = server.finished.then(async () => {
    for (const w of workers) w.postMessage("stop");
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<void>((r) => (timer = setTimeout(r, STOP_WAIT_MS)));
    await Promise.race([Promise.all(stopped), late]);
    clearTimeout(timer);
    for (const w of workers) w.terminate();
  });
  return { stopped: all };
}
