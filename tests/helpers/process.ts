/**
 * Start the processes tests talk to (memrep, memcached, nutcracker) on free
 * loopback ports, wait until they accept connections, and stop them for sure.
 *
 * `MEMREP_TARGET=memcached` makes {@linkcode startMemrep} start real memcached
 * for `serve` instead, so suites can be checked against the reference.
 * @module
 */

import { fileURLToPath } from "node:url";
import { freePort, waitForPort } from "./ports.ts";
import { v8FlagsArg } from "../../lib/v8_flags.ts";

/** Absolute path of the repository root (folder holding deno.json). */
export const REPO_ROOT: string = fileURLToPath(new URL("../../", import.meta.url)).replace(
  /\/$/,
  "",
);

/** A started process with its listening port and its captured output. */
export interface ProcessHandle {
  /** Short label used in messages (`memrep serve`, `memcached`, ...). */
  readonly name: string;
  /** Port it listens on (0 when it listens on none). */
  readonly port: number;
  /** OS process id. */
  readonly pid: number;
  /** The child process itself. */
  readonly proc: Deno.ChildProcess;
  /** The full argv used to start it. */
  readonly argv: readonly string[];
  /** Resolves with the exit status once the process has ended. */
  readonly status: Promise<Deno.CommandStatus>;
  /** True once the process has exited. */
  exited(): boolean;
  /** Lines written to stderr so far. */
  stderrLines(): string[];
  /** Lines written to stdout so far. */
  stdoutLines(): string[];
  /** Both streams, as lines in arrival order. */
  outputLines(): string[];
  /** Resolves with the first output line (stdout or stderr, index >= `fromLine`) matching `re`; rejects after `timeoutMs`. */
  waitForLog(re: RegExp, timeoutMs?: number, fromLine?: number): Promise<string>;
  /** Sends a signal (default SIGTERM); ignored once exited. */
  kill(signal?: Deno.Signal): void;
  /** SIGTERM, then SIGKILL after `graceMs`; waits for exit and output. Idempotent. */
  stop(graceMs?: number): Promise<Deno.CommandStatus>;
}

/** Options shared by the start functions. */
export interface StartOptions {
  /** Port to listen on; a free one is picked when omitted. */
  port?: number;
  /** Extra environment variables. */
  env?: Record<string, string>;
  /** How long to wait for the port to accept connections (ms). */
  readyTimeoutMs?: number;
  /** Wait for the port (default true). False for commands that listen on nothing. */
  waitPort?: boolean;
  /** Working directory (default: the repository root). */
  cwd?: string;
  /** Runs after the process has exited, inside stop() (temp files etc.). */
  cleanup?: () => Promise<void>;
}

/** Which implementation `startMemrep(["serve", ...])` runs: `memrep` (default) or `memcached`. */
export function memrepTarget(): "memrep" | "memcached" {
  const t = Deno.env.get("MEMREP_TARGET");
  return t === "memcached" ? "memcached" : "memrep";
}

const SEARCH_DIRS = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"];

/** Absolute path of an executable found on PATH or the usual sbin/bin folders, or undefined. */
export function binaryPath(name: string): string | undefined {
  if (name.includes("/")) return isExecutable(name) ? name : undefined;
  const dirs = (Deno.env.get("PATH") ?? "").split(":").filter(Boolean).concat(SEARCH_DIRS);
  for (const d of dirs) {
    const p = `${d}/${name}`;
    if (isExecutable(p)) return p;
  }
  return undefined;
}

function isExecutable(p: string): boolean {
  try {
    const st = Deno.statSync(p);
    return st.isFile && ((st.mode ?? 0o111) & 0o111) !== 0;
  } catch {
    return false;
  }
}

/** True when the executable `name` is installed. */
export function haveBinary(name: string): boolean {
  return binaryPath(name) !== undefined;
}

/**
 * For `Deno.test({ ignore: ignoreUnless(name, ["memcached"]), ... })`: returns
 * true (ignore) when a binary is missing and prints a loud SKIP line, so a
 * missing reference never passes silently.
 */
export function ignoreUnless(testName: string, binaries: string[]): boolean {
  const missing = binaries.filter((b) => !haveBinary(b));
  if (missing.length === 0) return false;
  console.log(`SKIP (${missing.join(", ")} not installed): ${testName}`);
  return true;
}

/** True when `/usr/bin/python3` imports `module` (python3-pylibmc, python3-pymemcache...). */
export function havePythonModule(module: string): boolean {
  try {
    return new Deno.Command("/usr/bin/python3", { args: ["-c", `import ${module}`] })
      .outputSync().code === 0;
  } catch {
    return false;
  }
}

/** {@linkcode ignoreUnless} for a Python module: loud SKIP line when it is missing. */
export function ignoreUnlessPython(testName: string, module: string): boolean {
  if (havePythonModule(module)) return false;
  console.log(`SKIP (python3-${module} not installed): ${testName}`);
  return true;
}

/** A new temporary file holding `text` (auth files, configs); the caller removes it. */
export async function writeTempFile(text: string, prefix = "memrep-test-"): Promise<string> {
  const path = await Deno.makeTempFile({ prefix });
  await Deno.writeTextFile(path, text);
  return path;
}

/** Runs a command to its end; its exit code and its output as text. */
export async function runCommand(
  cmd: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(cmd, { args, env, stdout: "piped", stderr: "piped" }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** Starts any command and returns its handle once `port` accepts connections. */
export async function startProcess(
  name: string,
  cmd: string,
  args: string[],
  port: number,
  opts: StartOptions = {},
): Promise<ProcessHandle> {
  const proc = new Deno.Command(cmd, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    cwd: opts.cwd ?? REPO_ROOT,
    env: { NO_COLOR: "1", ...opts.env },
  }).spawn();
  const handle = new Handle(name, proc, [cmd, ...args], port, opts.cleanup);
  if (opts.waitPort === false || port === 0) return handle;
  const ready = await waitForPort(
    port,
    opts.readyTimeoutMs ?? 15_000,
    "127.0.0.1",
    () => !handle.exited(),
  );
  if (!ready) {
    const st = await handle.stop(200);
    throw new Error(
      `${name} did not accept connections on 127.0.0.1:${port} ` +
        `(exit code ${st.code}${st.signal ? ", " + st.signal : ""})\n` +
        `argv: ${handle.argv.join(" ")}\noutput:\n${handle.outputLines().join("\n")}`,
    );
  }
  return handle;
}

class Handle implements ProcessHandle {
  readonly name: string;
  readonly port: number;
  readonly pid: number;
  readonly proc: Deno.ChildProcess;
  readonly argv: readonly string[];
  readonly status: Promise<Deno.CommandStatus>;
  #exited = false;
  #stdout: string[] = [];
  #stderr: string[] = [];
  #all: string[] = [];
  #waiters = new Set<() => void>();
  #pumps: Promise<void>[];
  #stopping: Promise<Deno.CommandStatus> | undefined;
  #cleanup: (() => Promise<void>) | undefined;

  constructor(
    name: string,
    proc: Deno.ChildProcess,
    argv: string[],
    port: number,
    cleanup?: () => Promise<void>,
  ) {
    this.name = name;
    this.#cleanup = cleanup;
    this.proc = proc;
    this.pid = proc.pid;
    this.argv = argv;
    this.port = port;
    this.status = proc.status.then(async (s) => {
      // The exit can be seen before its last output is read: wait for the
      // pipes to drain (bounded, as a daemonized child may hold them open).
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        Promise.allSettled(this.#pumps),
        new Promise((r) => timer = setTimeout(r, 1000)),
      ]);
      clearTimeout(timer);
      this.#exited = true;
      this.#notify();
      return s;
    });
    this.#pumps = [
      this.#pump(proc.stdout, this.#stdout),
      this.#pump(proc.stderr, this.#stderr),
    ];
  }

  async #pump(stream: ReadableStream<Uint8Array>, into: string[]): Promise<void> {
    let rest = "";
    const dec = new TextDecoder();
    try {
      for await (const chunk of stream) {
        rest += dec.decode(chunk, { stream: true });
        let nl: number;
        while ((nl = rest.indexOf("\n")) >= 0) {
          const line = rest.slice(0, nl).replace(/\r$/, "");
          rest = rest.slice(nl + 1);
          into.push(line);
          this.#all.push(line);
          if (Deno.env.get("MEMREP_TEST_ECHO")) console.error(`[${this.name}] ${line}`);
        }
        this.#notify();
      }
    } catch {
      // stream torn down with the process
    }
    if (rest) {
      into.push(rest);
      this.#all.push(rest);
      this.#notify();
    }
  }

  #notify(): void {
    for (const w of [...this.#waiters]) w();
  }

  exited(): boolean {
    return this.#exited;
  }
  stderrLines(): string[] {
    return [...this.#stderr];
  }
  stdoutLines(): string[] {
    return [...this.#stdout];
  }
  outputLines(): string[] {
    return [...this.#all];
  }

  waitForLog(re: RegExp, timeoutMs = 5000, fromLine = 0): Promise<string> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        for (let i = fromLine; i < this.#all.length; i++) {
          if (re.test(this.#all[i])) {
            done();
            resolve(this.#all[i]);
            return true;
          }
        }
        if (this.#exited) {
          done();
          reject(
            new Error(`${this.name} exited before logging ${re}; output:\n${this.#all.join("\n")}`),
          );
          return true;
        }
        return false;
      };
      const timer = setTimeout(() => {
        done();
        reject(
          new Error(
            `${this.name}: no log line matching ${re} within ${timeoutMs} ms; output:\n${
              this.#all.join("\n")
            }`,
          ),
        );
      }, timeoutMs);
      const waiter = () => void check();
      const done = () => {
        clearTimeout(timer);
        this.#waiters.delete(waiter);
      };
      if (!check()) this.#waiters.add(waiter);
    });
  }

  kill(signal: Deno.Signal = "SIGTERM"): void {
    if (this.#exited) return;
    try {
      this.proc.kill(signal);
    } catch {
      // already gone
    }
  }

  stop(graceMs = 3000): Promise<Deno.CommandStatus> {
    this.#stopping ??= (async () => {
      this.kill("SIGTERM");
      const timer = setTimeout(() => this.kill("SIGKILL"), graceMs);
      try {
        const st = await this.status;
        await Promise.all(this.#pumps);
        await this.#cleanup?.().catch(() => {});
        return st;
      } finally {
        clearTimeout(timer);
      }
    })();
    return this.#stopping;
  }
}

function hasFlag(args: string[], ...names: string[]): boolean {
  return args.some((a) => names.includes(a) || names.some((n) => a.startsWith(n + "=")));
}

function flagValue(args: string[], ...names: string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    if (names.includes(args[i])) return args[i + 1];
    for (const n of names) if (args[i].startsWith(n + "=")) return args[i].slice(n.length + 1);
  }
  return undefined;
}

/**
 * Argv prefix that runs memrep from source exactly as compile.sh builds it
 * (`-P=memrep`, the V8 flags of lib/v8_flags.ts).
 */
export function memrepCommand(): { cmd: string; args: string[] } {
  return {
    cmd: Deno.execPath(),
    args: [
      "run",
      "-q",
      "-P=memrep",
      v8FlagsArg(),
      "--config",
      `${REPO_ROOT}/deno.json`,
      `${REPO_ROOT}/main.ts`,
    ],
  };
}

/**
 * Starts `memrep <args>`. For `serve` and `proxy` it adds `-l 127.0.0.1 -p <free>`
 * unless `args` already has `-p`/`--port`, and waits for the port. With
 * `MEMREP_TARGET=memcached`, `serve` starts /usr/bin/memcached with the same
 * flags instead (handy to validate a test against the reference).
 */
export function startMemrep(args: string[], opts: StartOptions = {}): Promise<ProcessHandle> {
  const sub = args[0];
  const listens = sub === "serve" || sub === "proxy";
  let argv = [...args];
  let port = 0;
  if (listens) {
    const given = flagValue(argv, "-p", "--port");
    if (given !== undefined) port = Number(given);
    else {
      port = opts.port ?? freePort();
      argv.splice(1, 0, "-p", String(port));
    }
    if (!hasFlag(argv, "-l", "--listen")) argv.splice(1, 0, "-l", "127.0.0.1");
  }
  if (sub === "serve" && memrepTarget() === "memcached") {
    argv = argv.slice(1);
    return startProcess("memcached (as memrep)", memcachedPath(), withRootUser(argv), port, opts);
  }
  const { cmd, args: pre } = memrepCommand();
  return startProcess(`memrep ${sub ?? ""}`.trim(), cmd, [...pre, ...argv], port, {
    ...opts,
    waitPort: opts.waitPort ?? listens,
  });
}

/** Runs `memrep <args>` to completion (for CLI tests: --help, replicate, errors). */
export async function runMemrep(
  args: string[],
  opts: { env?: Record<string, string>; timeoutMs?: number; stdin?: Uint8Array } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const { cmd, args: pre } = memrepCommand();
  const proc = new Deno.Command(cmd, {
    args: [...pre, ...args],
    cwd: REPO_ROOT,
    stdin: opts.stdin ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", ...opts.env },
  }).spawn();
  if (opts.stdin) {
    const w = proc.stdin.getWriter();
    await w.write(opts.stdin);
    await w.close();
  }
  const timer = setTimeout(() => {
    try {
      proc.kill("SIGKILL");
    } catch { /* gone */ }
  }, opts.timeoutMs ?? 30_000);
  try {
    const out = await proc.output();
    const dec = new TextDecoder();
    return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
  } finally {
    clearTimeout(timer);
  }
}

function memcachedPath(): string {
  const p = binaryPath("memcached");
  if (!p) throw new Error("memcached is not installed");
  return p;
}

// memcached refuses to start as root without -u.
function withRootUser(args: string[]): string[] {
  if (Deno.uid() === 0 && !hasFlag(args, "-u", "--user")) return ["-u", "root", ...args];
  return args;
}

/**
 * Starts real memcached: `memcached -l 127.0.0.1 -p <free> -U 0 <args>`
 * (`-u root` added when running as root).
 */
export async function startMemcached(
  args: string[] = [],
  opts: StartOptions = {},
): Promise<ProcessHandle> {
  // A picked port can be taken by someone else before memcached binds it: retry.
  for (let attempt = 0;; attempt++) {
    const port = opts.port ?? freePort();
    const argv = withRootUser(["-l", "127.0.0.1", "-p", String(port), "-U", "0", ...args]);
    try {
      return await startProcess("memcached", memcachedPath(), argv, port, opts);
    } catch (e) {
      if (attempt >= 2 || opts.port !== undefined) throw e;
    }
  }
}

/** One nutcracker (twemproxy) pool, turned into YAML by {@linkcode nutcrackerYaml}. */
export interface NutcrackerPool {
  /** Backends as `host:port` (weight 1 added). */
  servers: string[];
  /** Default `fnv1a_64`. */
  hash?: string;
  /** Default `ketama`. */
  distribution?: string;
  /** Backend timeout in ms (default 400). */
  timeoutMs?: number;
  /** Default false: keep dead servers in the ring, like a plain client. */
  autoEjectHosts?: boolean;
  /** Failures before ejection (default 2). */
  serverFailureLimit?: number;
  /** ms before an ejected server is retried (default 30000). */
  serverRetryTimeoutMs?: number;
  /** Backend connections per server (default 1). */
  serverConnections?: number;
}

/** YAML for one pool named `memrep_test`, listening on `{port}` (filled in by {@linkcode startNutcracker}). */
export function nutcrackerYaml(pool: NutcrackerPool): string {
  const lines = [
    "memrep_test:",
    "  listen: 127.0.0.1:{port}",
    `  hash: ${pool.hash ?? "fnv1a_64"}`,
    `  distribution: ${pool.distribution ?? "ketama"}`,
    `  timeout: ${pool.timeoutMs ?? 400}`,
    "  backlog: 1024",
    "  preconnect: true",
    `  server_connections: ${pool.serverConnections ?? 1}`,
    `  auto_eject_hosts: ${pool.autoEjectHosts ?? false}`,
    `  server_failure_limit: ${pool.serverFailureLimit ?? 2}`,
    `  server_retry_timeout: ${pool.serverRetryTimeoutMs ?? 30000}`,
    "  servers:",
    ...pool.servers.map((s) => `   - ${s}:1`),
  ];
  return lines.join("\n") + "\n";
}

/**
 * Starts nutcracker with `config`: YAML text where `{port}` stands for the
 * listen port, or a {@linkcode NutcrackerPool}. Its stats port is a free one too.
 */
export async function startNutcracker(
  config: string | NutcrackerPool,
  opts: StartOptions = {},
): Promise<ProcessHandle> {
  const bin = binaryPath("nutcracker");
  if (!bin) throw new Error("nutcracker is not installed");
  const port = opts.port ?? freePort();
  const yaml = (typeof config === "string" ? config : nutcrackerYaml(config)).replaceAll(
    "{port}",
    String(port),
  );
  const dir = await Deno.makeTempDir({ prefix: "memrep-nutcracker-" });
  const conf = `${dir}/nutcracker.yml`;
  await Deno.writeTextFile(conf, yaml);
  const statsPort = freePort();
  return await startProcess(
    "nutcracker",
    bin,
    [
      "-c",
      conf,
      "-s",
      String(statsPort),
      "-a",
      "127.0.0.1",
      "-v",
      "4",
    ],
    port,
    { ...opts, cleanup: () => Deno.remove(dir, { recursive: true }) },
  );
}
