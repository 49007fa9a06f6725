/**
 * The item state bits serve keeps in the store's per-item user bits.
 * @module
 */

/** Meta-only item state kept in the store's user bits. */
export const ITEM_STALE = 1;
/** A win token was handed out for this item (meta W/Z). */
export const ITEM_TOKEN_SENT = 2;
/** The key was stored as binary (meta `b`): print it base64 encoded. */
export const ITEM_KEY_BINARY = 4;
