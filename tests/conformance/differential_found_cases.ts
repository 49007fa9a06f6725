/**
 * Differential cases found by the random differential
 * (random_differential_test.ts): each failed on memrep before its fix, and
 * is pinned here as a script against memcached 1.6.18.
 * @module
 */

import type { Case } from "./differential.ts";

const O33 = "O" + "x".repeat(33);
const K251 = "k".repeat(251);

/** Text and meta cases, in the order they were found. */
export const FOUND_CASES: Case[] = [
  {
    name: "mg refuses a too-long opaque where it reaches it: the vivify and a T before it done",
    steps: [
      `mg a N0 T100 ${O33} v\r\n`,
      "mg a t v\r\n",
      `mg b ${O33} N0\r\n`,
      "mg b t\r\n",
      `mg nokey ${O33}\r\n`,
      `mg nokey q ${O33}\r\n`,
    ],
  },
  {
    name: "ma refuses a too-long opaque after the arithmetic (a bad mode or value first)",
    steps: [
      "set n 0 0 1\r\n5\r\n",
      `ma n ${O33} v\r\n`,
      "get n\r\n",
      `ma m N0 J5 k ${O33} v\r\n`,
      "get m\r\n",
      `ma n MX ${O33}\r\n`,
      "set s 0 0 1\r\nx\r\n",
      `ma s ${O33}\r\n`,
      `ma nokey q ${O33}\r\n`,
    ],
  },
  {
    name: "ma on an empty value is non-numeric before its CAS is compared",
    steps: ["set e 0 0 0\r\n\r\n", "ma e C99999999999999\r\n", "ma e C99999999999999 q\r\n"],
  },
  {
    name: "items made by mg N, ma N, append and a growing incr lose the base64 key mark",
    steps: [
      "mg YQ== b N0 k\r\n",
      "mg YQ== b k\r\n",
      "ma Yg== b N0 J5 k\r\n",
      "mg Yg== b k v\r\n",
      "ms Yw== 1 b\r\nx\r\n",
      "ms Yw== 1 b MA\r\ny\r\n",
      "mg Yw== b k v\r\n",
      "ms ZA== 1 b\r\n5\r\n",
      "ma ZA== b\r\n",
      "mg ZA== b k v\r\n",
      "ma ZA== b D10\r\n",
      "mg ZA== b k v\r\n",
      "me ZA== b\r\n",
    ],
  },
  {
    name: "an incr of an item an unwritten mg reply holds makes a new item (not padded, unfetched)",
    steps: [
      "set m 0 0 2\r\n10\r\n",
      "mg m v\r\ndecr m 1\r\n",
      "mg m h v\r\n",
      "set m 0 0 2\r\n10\r\n",
      "mg m v\r\nma m MD v\r\nget m\r\n",
      // A get is written out at once: the decr after it pads in place.
      "set n 0 0 2\r\n10\r\n",
      "get n\r\ndecr n 1\r\nmg n h v\r\n",
    ],
  },
  {
    name: "ma that grows a counter sets the old item's exptime: its T is lost, t shows it",
    steps: [
      "ma x N0 J9\r\n",
      "ma x T100 D5 t v\r\n",
      "mg x t v\r\n",
      "ma x T-1 D100 t\r\n",
      "mg x t v\r\n",
    ],
  },
  {
    name: "a get refused for a too-long key fetched (and a gat touched) the keys before it",
    steps: [
      "set a 0 0 1\r\nx\r\n",
      `gets a ${K251} a\r\n`,
      "mg a h t\r\n",
      "set b 0 0 1\r\ny\r\n",
      `gat 100 b ${K251}\r\n`,
      "mg b h t\r\n",
    ],
  },
  {
    name: "a get refused for a too-long key drops the replies since memcached last transmitted",
    steps: [
      `mg b s R0 f Oopaque\r\nget n  ${K251} a n\r\n`,
      `set x 0 0 1\r\n1\r\nget n ${K251}\r\n`,
      `set x 0 0 1\r\n1\r\nget x\r\nget n ${K251} a n\r\nget x\r\n`,
      `set x 0 0 1\r\n1\r\nget x y\r\nbogus\r\nget x ${K251}\r\n`,
      `set x 0 0 1\r\n1\r\nmn\r\nset y 0 0 1\r\n1\r\ndelete q\r\nget x ${K251}\r\nget x\r\n`,
    ],
  },
];
