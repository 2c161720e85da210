/**
 * Encryption at rest for access-key secrets: AES-256-GCM under a master key
 * kept outside the database (a 0600 file in the data dir, or FERRY_MASTER_KEY
 * for several servers sharing one PostgreSQL). The access key id is the
 * associated data, so a ciphertext cannot be moved to another key's row.
 */
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { FerryError } from "../../lib/errors.ts";

export interface SecretBox {
  seal(plaintext: string, aad: string): string;
  open(sealed: string, aad: string): string;
}

export function createSecretBox(key: Buffer): SecretBox {
  if (key.length !== 32)
    throw new FerryError("MASTER_KEY_INVALID", `The master key must be 32 bytes; got ${key.length}.`);
  return {
    seal(plaintext, aad) {
      const iv = randomBytes(12);
      const c = createCipheriv("aes-256-gcm", key, iv);
      c.setAAD(Buffer.from(aad));
      const ct = Buffer.concat([c.update(plaintext, "utf8"), c.final()]);
      return `v1:${Buffer.concat([iv, c.getAuthTag(), ct]).toString("base64")}`;
    },
    open(sealed, aad) {
      if (!sealed.startsWith("v1:"))
        throw new FerryError("SECRET_FORMAT", "Stored secret is not in the v1 format.", { kind: "internal" });
      const raw = Buffer.from(sealed.slice(3), "base64");
      const d = createDecipheriv("aes-256-gcm", key, raw.subarray(0, 12));
      d.setAAD(Buffer.from(aad));
      d.setAuthTag(raw.subarray(12, 28));
      try {
        return Buffer.concat([d.update(raw.subarray(28)), d.final()]).toString("utf8");
      } catch (cause) {
        throw new FerryError(
          "MASTER_KEY_MISMATCH",
          "An access-key secret could not be decrypted: the master key differs from the one that stored it. Use the same master.key (or FERRY_MASTER_KEY) on every server of this database.",
          { cause },
        );
      }
    },
  };
}

/** Reads the master key from `env` (base64) or `file`, creating the file (0600) on first use. */
export function loadMasterKey(file: string, env: string | undefined): Buffer {
  if (env) {
    const k = Buffer.from(env, "base64");
    if (k.length !== 32)
      throw new FerryError(
        "MASTER_KEY_INVALID",
        `FERRY_MASTER_KEY must be 32 bytes in base64; it decodes to ${k.length} bytes.`,
      );
    return k;
  }
  if (!existsSync(file)) {
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    writeFileSync(file, randomBytes(32).toString("base64"), { mode: 0o600, flag: "wx" });
  }
  return loadMasterKey(file, readFileSync(file, "utf8").trim());
}
