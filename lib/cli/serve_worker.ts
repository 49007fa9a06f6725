/**
 * The module each extra serve thread (-t) runs: a listener and engine over
 * the shared cache (lib/server), plus, when serve replicates, the thread's
 * side of replication. It lives here, above both layers, so the server
 * knows nothing of replication.
 * @module
 */

import { runWorker } from "../server/mod.ts";
import type { ReplicationShare } from "../replication/mod.ts";

runWorker<ReplicationShare>(async (server, replication) => {
  // Loaded only when serve replicates: a plain thread starts sooner.
  if (replication) {
    new (await import("../replication/mod.ts")).WorkerReplication(server, replication);
  }
});
