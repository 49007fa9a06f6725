/**
 * Test certificates made with the openssl command at test time.
 * @module
 */

import { haveBinary } from "./process.ts";

/** Certificates made by openssl in a temp dir (removed by the caller). */
export interface Certs {
  /** The temp dir holding them. */
  dir: string;
  /** CA certificate path. */
  ca: string;
  /** Server certificate path. */
  cert: string;
  /** Server key path. */
  key: string;
  /** A key that does not match `cert`. */
  otherKey: string;
  /** `cert` and `key` in one file. */
  combined: string;
  /** The CA certificate's PEM text. */
  caPem: string;
}

async function openssl(dir: string, ...args: string[]): Promise<void> {
  const out = await new Deno.Command("openssl", { args, cwd: dir, stdout: "null", stderr: "piped" })
    .output();
  if (out.code !== 0) {
    throw new Error(`openssl ${args[0]}: ${new TextDecoder().decode(out.stderr)}`);
  }
}

/**
 * A fresh CA (ca.crt) and a server certificate it signed for 127.0.0.1 and
 * localhost (server.crt, server.key), an unrelated key (other.key) and the
 * chain with its key in one file (combined.pem).
 */
export async function makeCerts(): Promise<Certs> {
  const dir = await Deno.makeTempDir({ prefix: "memrep-tls-" });
  const rsa = ["-newkey", "rsa:2048", "-nodes"];
  await openssl(
    dir,
    "req",
    "-x509",
    ...rsa,
    "-keyout",
    "ca.key",
    "-out",
    "ca.crt",
    "-days",
    "2",
    "-subj",
    "/CN=memrep test CA",
  );
  await openssl(
    dir,
    "req",
    ...rsa,
    "-keyout",
    "server.key",
    "-out",
    "server.csr",
    "-subj",
    "/CN=localhost",
  );
  await Deno.writeTextFile(`${dir}/ext`, "subjectAltName=DNS:localhost,IP:127.0.0.1\n");
  await openssl(
    dir,
    "x509",
    "-req",
    "-in",
    "server.csr",
    "-CA",
    "ca.crt",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-out",
    "server.crt",
    "-days",
    "2",
    "-extfile",
    "ext",
  );
  await openssl(dir, "genrsa", "-out", "other.key", "2048");
  const cert = `${dir}/server.crt`;
  const key = `${dir}/server.key`;
  await Deno.writeTextFile(
    `${dir}/combined.pem`,
    (await Deno.readTextFile(cert)) + (await Deno.readTextFile(key)),
  );
  return {
    dir,
    ca: `${dir}/ca.crt`,
    cert,
    key,
    otherKey: `${dir}/other.key`,
    combined: `${dir}/combined.pem`,
    caPem: await Deno.readTextFile(`${dir}/ca.crt`),
  };
}

/** True (and a loud SKIP line) when openssl is missing. */
export function skipWithoutOpenssl(name: string): boolean {
  if (haveBinary("openssl")) return false;
  console.log(`SKIP (openssl not installed): ${name}`);
  return true;
}
