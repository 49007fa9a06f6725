/**
 * Flooding in a group (unit level): every member passes on only what was
 * news to it (Merger.fresh), so random interleavings of sets, deletes,
 * touches and delayed flushes end, after a bounded number of deliveries,
 * with the same items on every member.
 */

import { equal, ok } from "../helpers/assert.ts";
import { Writer } from "../../lib/protocol/mod.ts";
import { Store } from "../../lib/store/mod.ts";
import { Merger } from "../../lib/replication/merge.ts";
import {
  FrameParser,
  VERB,
  writeDeleteFrame,
  writeFlushFrame,
  writeItemFrame,
} from "../../lib/replication/stream.ts";
import { HybridClock } from "../../lib/replication/versions.ts";

const enc = new TextEncoder();
const START_UNIX = 1_700_000_000;

class FakeClock {
  t = 10;
  readonly processStartUnix = START_UNIX;
  now(): number {
    return this.t;
  }
}

function member(node: number, wall: () => number) {
  const clock = new FakeClock();
  const store = new Store({ memoryLimit: 8 * 1048576, maxItemSize: 1048576, evict: true }, clock);
  const hlc = new HybridClock(node, wall);
  store.nextCas = () => hlc.tick();
  return { store, hlc, merger: new Merger(store, clock, hlc, 1024) };
}

type Member = ReturnType<typeof member>;

/** The bytes of a local write on `m`, as its stream would carry them. */
function localChange(m: Member, rnd: (n: number) => number): Uint8Array {
  const out = new Writer(256);
  const key = enc.encode(`k${rnd(20)}`);
  const kind = rnd(10);
  if (kind < 6) {
    const v = enc.encode(`v${rnd(1000)}`);
    const h = m.store.alloc(key, 0, key.length, rnd(3), 0, v.length);
    m.store.buffer(h).set(v, m.store.valueOffset(h));
    m.store.link(h);
    writeItemFrame(out, VERB.S, m.store, h, 0, 0, START_UNIX);
  } else if (kind < 9) {
    const h = m.store.find(key, 0, key.length);
    if (h >= 0) m.store.unlink(h);
    const version = m.hlc.tick();
    m.merger.remember(key, 0, key.length, version);
    writeDeleteFrame(out, VERB.D, key, 0, key.length, version);
  } else {
    const version = m.hlc.tick();
    const at = START_UNIX + 10 + 3600; // delayed: the flush only raises a pending epoch
    m.merger.applyFlush(version, at, true);
    writeFlushFrame(out, version, at);
  }
  return out.view().slice();
}

function items(m: Member): Map<string, string> {
  const out = new Map<string, string>();
  const s = m.store;
  let cursor = 0;
  do {
    cursor = s.scan(cursor, 1000, (h) => {
      const ko = s.keyOffset(h), vo = s.valueOffset(h);
      const key = new TextDecoder().decode(s.buffer(h).subarray(ko, ko + s.keyLength(h)));
      const v = new TextDecoder().decode(s.buffer(h).subarray(vo, vo + s.valueLength(h)));
      out.set(key, `${s.cas(h)}:${s.flags(h)}:${v}`);
    });
  } while (cursor >= 0);
  return out;
}

Deno.test("group flooding: only news is passed on, deliveries end, and every member converges", () => {
  for (let seed = 1; seed <= 20; seed++) {
    let s = seed;
    const rnd = (n: number) => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) >>> 8) % n;
    let wall = (START_UNIX + 10) * 1000;
    const n = 3 + (seed % 3);
    const members = Array.from({ length: n }, (_, i) => member(i, () => wall));
    // In flight: (to, bytes). Each local change goes to every other member.
    const queue: Array<[number, Uint8Array]> = [];
    let changes = 0, deliveries = 0;
    const parser = new FrameParser();
    for (let step = 0; step < 400 || queue.length > 0; step++) {
      wall += rnd(3);
      if (step < 400 && rnd(2) === 0) {
        const from = rnd(n);
        const bytes = localChange(members[from], rnd);
        changes++;
        for (let to = 0; to < n; to++) if (to !== from) queue.push([to, bytes]);
        continue;
      }
      if (queue.length === 0) continue;
      const [to, bytes] = queue.splice(rnd(queue.length), 1)[0]; // any order
      deliveries++;
      ok(parser.parse(bytes, 0, bytes.length) === bytes.length, "one whole frame");
      const m = members[to].merger;
      m.applyFrame(parser);
      if (m.fresh) { for (let k = 0; k < n; k++) if (k !== to) queue.push([k, bytes]); }
      ok(deliveries < changes * n * n * 2 + 1000, `flooding ends (seed ${seed})`);
    }
    const first = items(members[0]);
    for (let k = 1; k < n; k++) {
      const other = items(members[k]);
      equal(other.size, first.size, `seed ${seed}: member ${k} holds as many items`);
      for (const [key, v] of first) equal(other.get(key), v, `seed ${seed}: ${key} on ${k}`);
    }
    ok(deliveries >= changes * (n - 1));
  }
});
