import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LocalDirectoryStore } from "./local-directory-store.ts";
import { objectStoreContract } from "./object-store.contract.ts";

objectStoreContract("LocalDirectoryStore", async () => {
  const dir = await mkdtemp(join(tmpdir(), "ferry-store-"));
  return { store: new LocalDirectoryStore(dir), cleanup: () => rm(dir, { recursive: true, force: true }) };
});
