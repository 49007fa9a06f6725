/**
 * The module each extra serve thread (-t) runs: a listener and engine over
 * the shared cache (lib/server), plus, when serve replicates, the thread's
 * side of replication. It lives here, above both layers, so the server
 * knows nothing of replication.
 * @module
 */

import { runWorker } from "../server/mod.ts";
import { type ReplicationShare, WorkerReplication } from "../replication/mod.ts";
import { reloadOnHangup } from "../auth/mod.ts";

runWorker<ReplicationShare>((server, replication) => {
  if (server.authenticator) reloadOnHangup(server.authenticator); // each thread holds its users
  if (replication) new WorkerReplication(server, replication);
});
