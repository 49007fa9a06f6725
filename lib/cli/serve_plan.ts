/**
 * What serve.ts hands serve_run.ts: the flags read into options, and the
 * listeners when it bound them already; the stop signals taken from the start.
 * @module
 */

import type { ReplicationOptions } from "../replication/mod.ts";
import type { ServerOptions } from "../server/mod.ts";
import { type BoundListeners, errorText, type HostPort } from "../transport/mod.ts";
import { UsageError } from "./flags.ts";

/** What serve_run.ts starts: the flags read, the options, the listeners if bound already. */
export interface ServePlan {
  /** The server's options (`outputMemLimit` absent: the default for -m). */
  options: Omit<ServerOptions, "outputMemLimit"> & { outputMemLimit?: number };
  /** Serve threads. */
  threads: number;
  /** A listener picks its port (-p 0): the workers join the one it picked. */
  picksPort: boolean;
  /** memcached -U: the UDP port to bind (0: one the system picks); absent: no UDP. */
  udp?: number;
  /** --replicate / -x: the group. */
  replication: ReplicationOptions | null;
  /** --metrics address. */
  metricsAddr?: HostPort;
  /** --metrics as given. */
  metricsFlag?: string;
  /** -P: the pid file, written already. */
  pidfile?: string;
  /** The listen addresses, for messages. */
  where: string;
  /** The signals, taken from the start. */
  signals: ServeSignals;
  /** The listeners, bound before the server loaded (absent: the server binds them). */
  bound?: BoundListeners;
}

/**
 * serve's signals from its first moment, before the server loaded (the port
 * answers by then): SIGINT / SIGTERM / SIGUSR1 stop it, SIGHUP reloads the
 * -Y auth file and, as memcached, is otherwise ignored (not the end of the
 * process). What arrived before a handler is set is handed to it then.
 */
export class ServeSignals {
  #stops = 0;
  #hangups = 0;
  #stop: (() => void) | undefined;
  #hangup: (() => void) | undefined;

  constructor() {
    const on = (signal: Deno.Signal, fn: () => void) => {
      try {
        Deno.addSignalListener(signal, fn);
      } catch { /* not on this OS */ }
    };
    for (const signal of ["SIGINT", "SIGTERM", "SIGUSR1"] as const) {
      on(signal, () => this.#stop ? this.#stop() : this.#stops++);
    }
    on("SIGHUP", () => this.#hangup ? this.#hangup() : this.#hangups++);
  }

  /** Take every stop signal from now on, after the ones that arrived already. */
  set stop(fn: () => void) {
    this.#stop = fn;
    for (; this.#stops > 0; this.#stops--) fn();
  }

  /** Take every SIGHUP from now on; one that arrived already reloads once. */
  set hangup(fn: () => void) {
    this.#hangup = fn;
    if (this.#hangups > 0) fn();
    this.#hangups = 0;
  }
}

/** The error `serve` exits 2 with when it cannot listen on `where`. */
export function cannotListen(where: string, err: unknown): UsageError {
  return new UsageError(`memrep serve: cannot listen on ${where}: ${errorText(err)}`);
}

/** Remove the pid file (-P), if there is one. */
export function removePidFile(pidfile: string | undefined): void {
  if (!pidfile) return;
  try {
    Deno.removeSync(pidfile);
  } catch { /* gone */ }
}
