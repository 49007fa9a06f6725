/**
 * Authentication for `serve` (and later the proxy): password files with
 * memcached's rules, the text login of memcached -Y, and SASL PLAIN for the
 * binary protocol's -S. Below server and proxy; knows nothing of sockets.
 * @module
 */

export {
  type AuthConfig,
  Authenticator,
  AuthFileError,
  SASL_MAX_MECH_LENGTH,
  SASL_MECHANISMS,
} from "./authenticator.ts";
export {
  AUTH_CLOSE,
  type AuthCounters,
  AuthSession,
  type SaslReply,
  SaslStatus,
} from "./session.ts";
export {
  binaryRefusal,
  binarySasl,
  binarySaslRequest,
  type SaslAction,
  SaslOpcode,
  STATUS_EINVAL,
  STATUS_UNKNOWN_COMMAND,
} from "./binary_sasl.ts";
export {
  type AuthFileParse,
  checkCredentials,
  checkPwdb,
  constantTimeEqual,
  type Credential,
  parseAuthFile,
} from "./password_file.ts";
export { authReloader, reloadOnHangup } from "./reload.ts";
