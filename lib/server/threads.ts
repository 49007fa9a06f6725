/**
 * Multi-threaded serve: thread 0 (the caller) and N-1 workers each accept
 * on the same port (SO_REUSEPORT) and run requests on one shared cache,
 * one batch at a time under a shared lock. Socket work, the larger part of
 * the cost, then runs on every core. The main thread also relays the
 * threads' {@linkcode PeerMessage}s (`stats conns`, `watch` lines).
 * @module
 */

import { type ClockOrigin, ServerClock } from "./clock.ts";
import { Engine } from "./commands.ts";
import type { EngineShared } from "./engine_options.ts";
import { Server, type ServerOptions } from "./listener.ts";
import { errorText } from "../transport/mod.ts";
import { type PeerMessage, Peers } from "./peers.ts";

/**
 * What a worker thread needs to join. `X` is what the layer above (the cli)
 * passes along for itself, e.g. replication's shared state.
 */
export interface ThreadInit<X = unknown> {
  /** The listener and engine options. */
  options: ServerOptions;
  /** Shared cache, lock and counters, with the worker's row. */
  shared: EngineShared;
  /** The main thread's clock origin. */
  origin: ClockOrigin;
  /** The caller's own payload (structured-cloneable). */
  extra?: X;
  /** Build everything but wait for a "listen" message before accepting. */
  deferListen?: boolean;
}

/** A worker's answer to its init. */
export type ThreadMessage =
  | { type: "ready" }
  | { type: "listening" }
  | { type: "error"; message: string }
  | { type: "stopped" }
  | PeerMessage;

/** Longest a worker may take to stop before it is terminated (ms). */
const STOP_WAIT_MS = 2000;

/** The running workers. */
export interface Threads {
  /**
   * Resolves once every worker stopped serving after `server` stopped (no
   * request runs on them any more), or was terminated after a bounded wait.
   */
  stopped: Promise<void>;
  /** Start accepting on workers started with `deferListen`; resolves once all do. */
  listen(): Promise<void>;
}

/** Options of {@linkcode startThreads}. */
export interface StartThreadsOptions {
  /**
   * Workers do not accept until {@linkcode Threads.listen} (a warm-restarted
   * replicated node catches up with its peer first).
   */
  deferListen?: boolean;
}

/**
 * Start `threads - 1` workers from the module at `workerUrl` (which calls
 * {@linkcode runWorker}) next to `server` (already listening with reusePort);
 * resolves once all listen. Stopping `server` stops them.
 */
export async function startThreads<X>(
  server: Server,
  options: ServerOptions,
  threads: number,
  workerUrl: string,
  extra?: X,
  start: StartThreadsOptions = {},
): Promise<Threads> {
  const shared = server.engine.share(threads);
  const origin = server.engine.clock.origin;
  // Functions do not cross threads; workers rebuild their hooks from `extra`.
  const { extraStats: _e, statsGroups: _g, ...plain } = options;
  // The ports bound here when it listens first (-p 0, `-l host:0`), else the given ones.
  const options0 = { ...plain, listen: server.addresses };
  const workers: Worker[] = [];
  const stopped: Promise<void>[] = [];
  const listening: PromiseWithResolvers<void>[] = [];
  const engine = server.engine;
  const route = (m: PeerMessage) => {
    for (let t = 0; t < threads; t++) {
      if (t === m.from || (m.to !== -1 && m.to !== t)) continue;
      if (t === 0) engine.receive(m.from, m.body);
      else workers[t - 1]?.postMessage(m); // (not started yet: it has nothing to tell)
    }
  };
  engine.peers = new Peers(0, threads, (to, body) => route({ type: "peer", from: 0, to, body }));
  try {
    for (let t = 1; t < threads; t++) {
      const worker = new Worker(workerUrl, { type: "module" });
      workers.push(worker);
      const done = Promise.withResolvers<void>();
      stopped.push(done.promise);
      const up = Promise.withResolvers<void>();
      up.promise.catch(() => {}); // (awaited by listen(), if ever)
      listening.push(up);
      let isReady = false;
      const ready = new Promise<void>((resolve, reject) => {
        worker.onmessage = (e: MessageEvent<ThreadMessage>) => {
          if (e.data.type === "peer") route(e.data);
          else if (e.data.type === "ready") {
            isReady = true;
            resolve();
          } else if (e.data.type === "listening") up.resolve();
          else if (e.data.type === "error") {
            const err = new Error(e.data.message);
            if (isReady) up.reject(err);
            else reject(err);
          } else {
            done.resolve();
            server.stop(); // (`shutdown` arrived on that thread: stop them all)
          }
        };
        worker.onerror = (e) => {
          e.preventDefault();
          reject(new Error(e.message));
        };
      });
      const init: ThreadInit<X> = {
        // The users this thread has now, and each reload's after (the file is not read again).
        options: { ...options0, reusePort: true, auth: server.authenticator?.current },
        shared: { ...shared, thread: t },
        origin,
        extra,
        deferListen: start.deferListen,
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
  const listen = async () => {
    if (start.deferListen) { for (const w of workers) w.postMessage("listen"); }
    await Promise.all(listening.map((l) => l.promise));
  };
  return { stopped: all, listen };
}

declare const self: Worker & { close(): void };

/**
 * The body of a worker thread's module: on its init message, build an engine
 * over the shared cache and a listener on the shared port; `attach` adds the
 * caller's parts (replication) before the port answers.
 */
export function runWorker<X>(
  attach?: (server: Server, extra: X | undefined) => void | Promise<void>,
): void {
  let server: Server | undefined;
  let stopping = false;
  const post = (message: ThreadMessage) => self.postMessage(message);
  const listen = (s: Server) => {
    try {
      s.listen();
      post({ type: "listening" });
    } catch (err) {
      post({ type: "error", message: errorText(err) });
    }
  };
  self.onmessage = (event: MessageEvent<ThreadInit<X> | PeerMessage | "stop" | "listen">) => {
    if (event.data === "stop") {
      stopping = true;
      server?.stop();
      return;
    }
    if (event.data === "listen") {
      if (server && !server.listening) listen(server);
      return;
    }
    if ("type" in event.data) {
      const m = event.data;
      if (m.body.kind === "auth") server?.authenticator?.adopt(m.body.bytes);
      else server?.engine.receive(m.from, m.body);
      return;
    }
    const { options, shared, origin, extra, deferListen } = event.data;
    void (async () => {
      try {
        const engine = new Engine(options, new ServerClock(origin), shared);
        const t = shared.thread;
        engine.peers = new Peers(
          t,
          shared.threads,
          (to, body) => post({ type: "peer", from: t, to, body }),
        );
        const s = server = new Server({ ...options, reusePort: true }, engine);
        s.finished.then(() => {
          post({ type: "stopped" });
          self.close();
        });
        await attach?.(s, extra); // (may load modules: "stop" can come meanwhile)
        if (stopping) return;
        if (!deferListen) s.listen();
        post({ type: "ready" });
        if (!deferListen) post({ type: "listening" });
      } catch (err) {
        post({ type: "error", message: errorText(err) });
      }
    })();
  };
}
