/**
 * Handshake slots (lib/replication/slots.ts): a newcomer always gets a
 * slot; the one closed instead is idle if any is, from the busiest source,
 * its oldest, so a peer that greeted survives any number of idle ones.
 */

import { deepEqual, equal, ok } from "../helpers/assert.ts";
import { HandshakeSlots, MAX_HANDSHAKES } from "../../lib/replication/slots.ts";

/** A stand-in connection that records whether it was closed. */
function fakeConn(): Deno.Conn & { closed: boolean } {
  const c = { closed: false, close: () => (c.closed = true) };
  return c as unknown as Deno.Conn & { closed: boolean };
}

Deno.test("handshake slots: a newcomer evicts the oldest idle one of the busiest source", () => {
  const slots = new HandshakeSlots();
  const attacker = Array.from({ length: MAX_HANDSHAKES - 1 }, fakeConn);
  for (const [i, c] of attacker.entries()) slots.take(c, "10.0.0.9", `10.0.0.9:${i}`);
  const other = fakeConn();
  slots.take(other, "10.0.0.2", "10.0.0.2:1");
  equal(slots.size, MAX_HANDSHAKES);
  const peer = fakeConn();
  const mine = slots.take(peer, "10.0.0.3", "10.0.0.3:1");
  equal(slots.size, MAX_HANDSHAKES);
  ok(attacker[0].closed, "the busiest source's oldest goes");
  ok(!other.closed && !peer.closed);
  mine.greeted = true;
  // However many idle ones follow, from any source, the greeted one stays.
  const more = Array.from({ length: 100 }, fakeConn);
  for (const [i, c] of more.entries()) slots.take(c, i % 2 ? "10.0.0.3" : "10.0.0.9", `x:${i}`);
  ok(!peer.closed, "a greeted handshake outlives idle newcomers");
  equal(slots.size, MAX_HANDSHAKES);
  ok(!other.closed, "a quieter source keeps its slot while a busier one has idle ones");
  slots.release(mine);
  equal(slots.size, MAX_HANDSHAKES - 1);
});

Deno.test("handshake slots: with every one greeted, the busiest source's oldest goes", () => {
  const slots = new HandshakeSlots(4);
  const conns = Array.from({ length: 4 }, fakeConn);
  const hosts = ["a", "b", "b", "c"];
  for (let i = 0; i < 4; i++) slots.take(conns[i], hosts[i], `${hosts[i]}:${i}`).greeted = true;
  const next = fakeConn();
  slots.take(next, "d", "d:1");
  deepEqual(conns.map((c) => c.closed), [false, true, false, false]);
  ok(!next.closed);
});
