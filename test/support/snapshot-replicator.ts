/**
 * A replicator in its own process whose snapshot clock runs fast: every
 * consistency point happens `stepMinutes` after the previous one, so the
 * default point-in-time policy takes, expires and collects snapshots within
 * seconds. For crash tests (kill -9). Prints one JSON line once listening.
 *
 *   node snapshot-replicator.ts <dataDir> <stepMinutes>
 */
import { randomBytes } from "node:crypto";
import { createSelfSigned } from "../../src/lib/pki.ts";
import { startReplicator, tokenAuthorizer } from "../../src/replicator/server.ts";

const [dataDir, step] = process.argv.slice(2);
if (!dataDir) throw new Error("usage: snapshot-replicator.ts <dataDir> <stepMinutes>");
let t = Date.parse("2026-01-01T00:00:00Z");
const stepMs = Number(step ?? "11") * 60_000;
const tls = await createSelfSigned({ commonName: "replicator", altNames: ["127.0.0.1"] });
const token = randomBytes(8).toString("hex");
const rep = await startReplicator({
  dataDir,
  host: "127.0.0.1",
  port: 0,
  tls,
  authorize: tokenAuthorizer(token),
  now: () => new Date((t += stepMs)),
});
process.stdout.write(`${JSON.stringify({ port: rep.port, token, fingerprint: tls.fingerprint })}\n`);
