/**
 * memrep's own version, at the bottom of the layers so the server (stats),
 * the proxy and the command line all report the same one.
 * @module
 */

/** memrep's release version (`memrep --version`, `STAT memrep_version`). */
export const MEMREP_VERSION = "0.1.0";

/**
 * The memcached version memrep speaks and answers `version` with (clients
 * parse it; npm `memcached` anchors a regex at its end). Here, at the
 * bottom, so `serve -h`/`-V` print it without loading the protocol.
 */
export const MEMCACHED_VERSION = "1.6.18";
