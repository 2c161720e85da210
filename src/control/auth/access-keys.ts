/**
 * Access keys: `operator` (every operation), `install` (may only register
 * agents, like MGN's installation policy) and `agent` (issued by
 * registration, may only report for its own source server). Secrets are
 * returned once at creation and stored sealed.
 */
import { randomBytes } from "node:crypto";
import type { AccessKeyRow, AccessKeyScope, Store } from "../store/store.ts";
import type { SecretBox } from "./secret-box.ts";
import { FerryError } from "../../lib/errors.ts";

const BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

function newAccessKeyId(scope: AccessKeyScope): string {
  const prefix = { operator: "FKOP", install: "FKIN", replicator: "FKRP", agent: "FKAG" }[scope];
  const bytes = randomBytes(16);
  let s = "";
  for (const b of bytes) s += BASE32[b & 31];
  return `${prefix}${s}`;
}

export interface CreatedAccessKey {
  accessKeyId: string;
  secretAccessKey: string;
  scope: AccessKeyScope;
  description: string;
  createdAt: string;
}

export interface AccessKeyInfo {
  accessKeyId: string;
  scope: AccessKeyScope;
  sourceServerID?: string;
  description: string;
  createdAt: string;
}

export interface AccessKeys {
  create(scope: AccessKeyScope, description: string, sourceServerID?: string): Promise<CreatedAccessKey>;
  list(): Promise<AccessKeyInfo[]>;
  delete(accessKeyId: string): Promise<void>;
  /** The key row and its secret, for signature verification; undefined if unknown. */
  resolve(accessKeyId: string): Promise<{ row: AccessKeyRow; secret: string } | undefined>;
}

/** The scopes an operator can create keys for (`agent` keys come from registration). */
export const SCOPES: AccessKeyScope[] = ["operator", "install", "replicator"];

export function createAccessKeys(store: Store, box: SecretBox, now: () => number): AccessKeys {
  return {
    async create(scope, description, sourceServerID) {
      const accessKeyId = newAccessKeyId(scope);
      const secretAccessKey = randomBytes(30).toString("base64");
      const createdAt = now();
      const row: AccessKeyRow = {
        accessKeyId,
        scope,
        description,
        secretCiphertext: box.seal(secretAccessKey, accessKeyId),
        createdAt,
      };
      if (sourceServerID) row.sourceServerID = sourceServerID;
      await store.accessKeys.insert(row);
      return {
        accessKeyId,
        secretAccessKey,
        scope,
        description,
        createdAt: new Date(createdAt).toISOString(),
      };
    },
    async list() {
      return (await store.accessKeys.list()).map((r) => ({
        accessKeyId: r.accessKeyId,
        scope: r.scope,
        ...(r.sourceServerID ? { sourceServerID: r.sourceServerID } : {}),
        description: r.description,
        createdAt: new Date(r.createdAt).toISOString(),
      }));
    },
    async delete(accessKeyId) {
      if (!(await store.accessKeys.delete(accessKeyId))) {
        throw new FerryError(
          "ACCESS_KEY_NOT_FOUND",
          `Access key ${accessKeyId} does not exist. List the keys with 'ferry access-key list'.`,
        );
      }
    },
    async resolve(accessKeyId) {
      const row = await store.accessKeys.get(accessKeyId);
      if (!row) return undefined;
      return { row, secret: box.open(row.secretCiphertext, accessKeyId) };
    },
  };
}
