/**
 * F1 when the installer downloads from the control plane (run without
 * `--s3-endpoint`, docs/installer.md): the package's hash file at
 * `GET /ferry/agent/package.sha256`, signed with the key the installer
 * signs with, over the service endpoint's TCP and TLS that F2 checked.
 * Published there means the installer's download can work; a 404 means
 * nothing was published to this control plane.
 */
import { FerryError } from "../../lib/errors.ts";
import { createSignedClient } from "../../lib/signed-client.ts";
import { AGENT_PACKAGE_SHA256_PATH } from "../../model/agent-api.ts";
import { failed, passed, type FlowRun } from "./checks.ts";
import type { SignedCallTarget } from "./endpoint.ts";

export async function checkControlPlanePackage(
  run: FlowRun,
  t: SignedCallTarget,
  caPem: string | undefined,
): Promise<boolean> {
  const origin = `https://${t.name}:${t.port}`;
  const client = createSignedClient({
    endpoint: origin,
    region: t.region,
    credentials: t.credentials,
    ...(caPem ? { caPem } : {}),
    hosts: new Map([[t.name.toLowerCase(), t.address]]),
    timeoutMs: t.timeoutMs,
  });
  try {
    const r = await client.request("GET", AGENT_PACKAGE_SHA256_PATH);
    const sha256 = r.body.toString("utf8").split(/\s/)[0] ?? "";
    passed(
      run,
      "package",
      `${AGENT_PACKAGE_SHA256_PATH} is published on the control plane (sha256 ${sha256.slice(0, 16)}…)`,
    );
    return true;
  } catch (err) {
    if (!(err instanceof FerryError)) throw err;
    const status = Number(err.details.status ?? 0);
    if (err.code === "CONTROL_PLANE_REFUSED" && status > 0) {
      failed(run, "package", {
        check: "http",
        url: `${origin}${AGENT_PACKAGE_SHA256_PATH}`,
        status,
        from: "control-plane",
      });
    } else {
      failed(run, "package", {
        check: "tls",
        address: `${t.address}:${t.port}`,
        error: err.code,
        name: t.name,
      });
    }
    return false;
  } finally {
    client.close();
  }
}
