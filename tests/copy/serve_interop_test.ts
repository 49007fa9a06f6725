/**
 * `memrep replicate` between memrep serve and memcached, both ways. They
 * depend on serve's `lru_crawler metadump`, `mg ... v f t` and
 * `ms ... F T` with base64 (`b`) keys: a failure here may be serve's.
 */

import { deepEqual, equal, ok } from "../helpers/assert.ts";
import {
  ignoreUnless,
  type ProcessHandle,
  runMemrep,
  startMemcached,
  startMemrep,
} from "../helpers/process.ts";
import { Client } from "../../lib/client/mod.ts";

const enc = new TextEncoder();
const ignore = ignoreUnless("memrep replicate <-> memrep serve tests", ["memcached"]);

async function fill(port: number): Promise<void> {
  const c = await Client.connect("127.0.0.1", port);
  try {
    for (let i = 0; i < 200; i++) {
      const v = new Uint8Array(i * 5).map((_, j) => (i + j) & 0xff);
      await c.set(`key:${i}`, v, i, i % 2 ? 600 : 0);
    }
    await c.ms("AAEC/w==", enc.encode("binary"), "b F3 T0");
  } finally {
    c.close();
  }
}

async function check(port: number): Promise<void> {
  const c = await Client.connect("127.0.0.1", port);
  try {
    for (let i = 0; i < 200; i++) {
      const r = await c.mg(`key:${i}`, "v f t");
      deepEqual(r.value, new Uint8Array(i * 5).map((_, j) => (i + j) & 0xff), `key:${i}`);
      equal(r.flags, i);
      if (i % 2) ok(r.ttl > 590 && r.ttl <= 600, `key:${i} ttl ${r.ttl}`);
      else equal(r.ttl, -1);
    }
    const b = await c.mg("AAEC/w==", "b v f");
    equal(new TextDecoder().decode(b.value), "binary");
    equal(b.flags, 3);
  } finally {
    c.close();
  }
}

async function copy(from: ProcessHandle, to: ProcessHandle): Promise<void> {
  const r = await runMemrep([
    "replicate",
    "--from",
    `127.0.0.1:${from.port}`,
    "--to",
    `127.0.0.1:${to.port}`,
    "--json",
  ], { timeoutMs: 60_000 });
  equal(r.code, 0, r.stderr);
  equal(JSON.parse(r.stdout).copied, 201, r.stdout);
}

Deno.test({
  name: "replicate from memrep serve to memcached copies every item (serve: metadump, mg)",
  ignore,
  async fn() {
    const serve = await startMemrep(["serve"]);
    const mc = await startMemcached();
    try {
      await fill(serve.port);
      await copy(serve, mc);
      await check(mc.port);
    } finally {
      await serve.stop();
      await mc.stop();
    }
  },
});

Deno.test({
  name: "replicate from memcached to memrep serve copies every item (serve: ms)",
  ignore,
  async fn() {
    const mc = await startMemcached();
    const serve = await startMemrep(["serve"]);
    try {
      await fill(mc.port);
      await copy(mc, serve);
      await check(serve.port);
    } finally {
      await serve.stop();
      await mc.stop();
    }
  },
});
