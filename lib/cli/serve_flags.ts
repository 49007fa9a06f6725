/**
 * `memrep serve`'s command line: the flag table, the help text, and the one
 * rewrite done before parsing.
 * @module
 */

import type { FlagSpec } from "./flags.ts";

/** `memrep serve`'s flags: memcached's (short names as its), repcached's -x/-X, memrep's own. */
export const SERVE_SPEC: FlagSpec = {
  port: { type: "string", short: "p" },
  listen: { type: "string", short: "l", multiple: true },
  "memory-limit": { type: "string", short: "m" },
  "conn-limit": { type: "string", short: "c" },
  "max-item-size": { type: "string", short: "I" },
  "disable-evictions": { type: "boolean", short: "M" },
  verbose: { type: "boolean", short: "v", multiple: true },
  "udp-port": { type: "string", short: "U" },
  user: { type: "string", short: "u" },
  daemon: { type: "boolean", short: "d" },
  pidfile: { type: "string", short: "P" },
  "enable-shutdown": { type: "boolean", short: "A" },
  threads: { type: "string", short: "t" },
  factor: { type: "string", short: "f" },
  // memcached's long name of -f.
  "slab-growth-factor": { type: "string" },
  "slab-min-size": { type: "string", short: "n" },
  "max-reqs-per-event": { type: "string", short: "R" },
  protocol: { type: "string", short: "B" },
  extended: { type: "string", short: "o", multiple: true },
  "enable-sasl": { type: "boolean", short: "S" },
  "auth-file": { type: "string", short: "Y" },
  "memory-file": { type: "string", short: "e" },
  "disable-flush-all": { type: "boolean", short: "F" },
  "disable-cas": { type: "boolean", short: "C" },
  "disable-watch": { type: "boolean", short: "W" },
  // memcached's -X; here -X is repcached's replication port.
  "disable-dumping": { type: "boolean" },
  "prefix-delimiter": { type: "string", short: "D" },
  "enable-largepages": { type: "boolean", short: "L" },
  "lock-memory": { type: "boolean", short: "k" },
  "enable-coredumps": { type: "boolean", short: "r" },
  license: { type: "boolean", short: "i" },
  napi_ids: { type: "string", short: "N" },
  version: { type: "boolean", short: "V" },
  "listen-backlog": { type: "string", short: "b" },
  "unix-socket": { type: "string", short: "s" },
  "unix-mask": { type: "string", short: "a" },
  "enable-ssl": { type: "boolean", short: "Z" },
  "repl-host": { type: "string", short: "x" },
  "repl-port": { type: "string", short: "X" },
  replicate: { type: "string", multiple: true },
  "repl-listen": { type: "string" },
  // A bare --repl-sync is rewritten to --repl-sync=all before parsing (see normalizeServeArgs).
  "repl-sync": { type: "string" },
  "repl-sync-timeout": { type: "string" },
  "repl-sync-degrade": { type: "boolean" },
  "repl-secret": { type: "string" },
  "repl-secret-file": { type: "string" },
  "repl-timeout": { type: "string" },
  "repl-backlog": { type: "string" },
  "repl-drain-timeout": { type: "string" },
  "repl-queue": { type: "string", short: "q" },
  "repl-tls-cert": { type: "string" },
  "repl-tls-key": { type: "string" },
  "repl-tls-ca": { type: "string" },
  metrics: { type: "string" },
  "max-buffered-mb": { type: "string" },
  help: { type: "boolean", short: "h" },
};

/** Help text for `memrep serve --help`. */
export const SERVE_HELP = `Usage: memrep serve [options]

A memcached-compatible cache server (text and meta protocol).

memcached options:
  -p, --port <num>            TCP port to listen on (default 11211)
  -l, --listen <addr>         interface to listen on, repeatable or comma separated (default: every
                              interface, IPv4 and IPv6): <host>[:<port>] or [<ipv6>][:<port>] (the
                              port defaults to -p's; * is every IPv4 interface)
  -m, --memory-limit <mb>     item memory in megabytes (default 64)
  -c, --conn-limit <num>      max simultaneous connections (default 1024)
  -I, --max-item-size <size>  max item size, e.g. 1m, 512k (default 1m)
  -M, --disable-evictions     return errors on memory exhaustion instead of evicting
  -f, --factor <num>          chunk size growth factor (default 1.25)
  -n, --slab-min-size <bytes> min space for key+value+flags (default 48)
  -A, --enable-shutdown       allow the shutdown command
  -v, --verbose               -v events, -vv details
  -d, --daemon                run in the background
  -P, --pidfile <file>        write the process id to <file>
  -U, --udp-port <num>        UDP port on the -l addresses (default: 0, off; -1: one the system
                              picks); memcached's frames, served by the first thread
  -u, --user <name>           accepted for compatibility; memrep does not switch users
  -t, --threads <num>         serve threads sharing one cache (default: the cores, at most 4:
                              the most throughput; -t 1 costs less CPU per request; more
                              threads than cores cost more and serve less. Linux only,
                              elsewhere 1)
  -B, --protocol <name>       auto (default: text or binary, by each connection's first byte),
                              ascii or binary
  -s, --unix-socket <file>    serve on this unix-domain socket instead of TCP (one thread)
  -a, --unix-mask <mask>      permission bits of the -s socket, octal (default 700)
  -F, --disable-flush-all     refuse flush_all
  -V, --version               print memcached's version line (memcached 1.6.18) and exit
  -W, --disable-watch         refuse watch (CLIENT_ERROR watch commands not allowed)
  --disable-dumping           refuse stats cachedump and lru_crawler metadump (memcached's -X;
                              memrep's -X is repcached's replication port)
  -D <char>                   the delimiter of key prefixes for stats detail (default :);
                              turns the per-prefix counting on from the start
  -L, --enable-largepages     accepted (memrep's memory is the runtime's: no page size of its own)
  -k, --lock-memory           accepted; memrep cannot lock its memory (a warning, as memcached's
                              when mlockall fails)
  -r, --enable-coredumps      accepted (the core size limit is the shell's)
  -N, --napi_ids <num>        accepted and shown in stats settings
  -i, --license               print the license note and exit
  -C, --disable-cas           no CAS: every CAS reads 0 (gets, mg c, binary), cas answers EXISTS
  -b, --listen-backlog <num>  accepted and shown in stats settings (the OS default backlog is used)
  -R, --max-reqs-per-event <n> requests one read runs before the connection yields (default 20)
  -o read_buf_mem_limit=<mb>  read buffer memory, split between the threads (default 0: none)
  --max-buffered-mb <num>     replies that connections whose clients do not read may hold,
                              split between the threads; past it each such connection holds
                              about one reply, not 1 MB (default: -m / 4, at least 16)
  -e, --memory-file <file>    warm restart: SIGUSR1, SIGTERM or SIGINT saves the cache to <file>
                              and stops; the next start with the same -e (and -m, -I, -f, -n)
                              loads it back (then removes it); with replication it also
                              resumes from the peers' backlogs instead of full copies

TLS (memcached's; see README):
  -Z, --enable-ssl            serve TLS; -o ssl_chain_cert=<pem>,ssl_key=<pem> name the certificate
                              chain and its key (the key may be in the chain file); -l notls:<host>[:<port>]
                              adds a plain listener. ssl_verify_mode must stay 0 (no client certificates)

observability:
  --metrics <host:port>       serve Prometheus metrics at http://<host:port>/metrics

authentication (memcached's; see README):
  -Y, --auth-file <file>      text clients log in first (memcached 1.6 -Y): 'user:password' lines
  -S, --enable-sasl           binary clients log in with SASL PLAIN; users from MEMCACHED_SASL_PWDB
                              when set, else from --auth-file

replication (two nodes, both read-write, like repcached):
  --replicate <host:port>     peer's replication address; this node listens on the same port
                              when the peer does not answer
  -x <host> / -X <port>       repcached's form of the same (default port 11212)
  --replicate <a:p,b:p,c:p>   a group (repeatable or comma separated, the same list on every
                              member): each member streams to every other, read-write
  --repl-listen <host:port>   which member of the list this node is (default: the member whose
                              host is a -l address, or else the only address of this machine)
  -q <num>                    repcached's replication queue length: accepted and ignored
                              (memrep's queue is the backlog, sized in bytes: --repl-backlog)
  --repl-secret-file <file>   read the shared secret from a file; both sides must match
                              (or set MEMREP_REPL_SECRET)
  --repl-secret <text>        the secret itself: visible to every user in ps, prefer the above
  --repl-sync[=all]           acknowledge a write only after the peer applied it; when the
                              peer does not confirm within --repl-sync-timeout, the write
                              stays stored here and the client gets
                              SERVER_ERROR replication peer unavailable (a group: every
                              linked member applied it, at least one)
  --repl-sync=quorum          a group: after a majority of the members (this one counted)
  --repl-sync-timeout <ms>    how long a --repl-sync write waits (default: --repl-timeout)
  --repl-sync-degrade         with --repl-sync: while no peer confirms, acknowledge writes
                              locally instead (counted in stats as repl_sync_degraded)
  --repl-timeout <ms>         declare a silent peer dead after this long (default 2000)
  --repl-backlog <size>       changes kept for partial resync (default 64m)
  --repl-tls-cert <pem>       TLS on the replication link: this node's certificate chain and
  --repl-tls-key <pem>        key (used when it listens); both nodes need them
  --repl-tls-ca <pem>         CA the peer's certificate must chain to when this node dials
                              (default: the system's roots). The listener cannot check a
                              client certificate: --repl-secret authenticates the dialer
  --repl-drain-timeout <ms>   on SIGINT/SIGTERM/shutdown: how long to wait for the peer to
                              apply what it has not yet, after clients are closed
                              (default 10000; 0 stops at once; so does a second signal)
`;

/**
 * `--repl-sync` alone means `--repl-sync=all` (a string option would take
 * the next argument as its value). Values of other options stay as given.
 */
export function normalizeServeArgs(args: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === "--") {
      out.push(...args.slice(i));
      break;
    }
    out.push(a === "--repl-sync" ? "--repl-sync=all" : a);
    // A separate value of a string option is taken as it is (a secret may look like a flag).
    const long = /^--([^=]+)$/.exec(a)?.[1];
    const short = /^-([^-])$/.exec(a)?.[1];
    const spec = long !== undefined
      ? SERVE_SPEC[long]
      : Object.values(SERVE_SPEC).find((o) => short !== undefined && o.short === short);
    if (spec?.type === "string" && a !== "--repl-sync" && i + 1 < args.length) out.push(args[++i]);
  }
  return out;
}
