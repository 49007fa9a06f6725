/**
 * One extra serve thread: its own listener on the shared port
 * (SO_REUSEPORT) and its own engine over the shared cache.
 * @module
 */

import { ServerClock } from "./clock.ts";
import { Engine } from "./commands.ts";
import { Server } from "./listener.ts";
import { errorText } from "../transport/mod.ts";
import type { ThreadInit, ThreadMessage } from "./threads.ts";
import { WorkerReplication } from "../replication/threads.ts";
import { reloadOnHangup } from "../auth/mod.ts";

declare const self: Worker & { close(): void };

self.onmessage = (event: MessageEvent<ThreadInit | "stop">) => {
  if (event.data === "stop") {
    server?.stop();
    return;
  }
  const { options, shared, origin, replication } = event.data;
  try {
    const engine = new Engine(options, new ServerClock(origin), shared);
    server = new Server({ ...options, reusePort: true }, engine);
    if (server.authenticator) reloadOnHangup(server.authenticator);
    if (replication) new WorkerReplication(server, replication);
    server.listen();
    server.finished.then(() => {
      post({ type: "stopped" });
      self.close();
    });
    post({ type: "ready" });
  } catch (err) {
    post({ type: "error", message: errorText(err) });
  }
};

let server: Server | undefined;

function post(message: ThreadMessage): void {
  self.postMessage(message);
}
