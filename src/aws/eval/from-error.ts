/**
 * OBS-01: an MGN initiation step or error, as the console or
 * DescribeSourceServers shows it, points at the flow most likely at fault.
 */
import { FerryError } from "../../lib/errors.ts";
import type { FlowId } from "./findings.ts";

const MAP: [RegExp, FlowId[]][] = [
  [/AUTHENTICATE_WITH_SERVICE/, ["F4"]],
  [/DOWNLOAD_REPLICATION_SOFTWARE/, ["F6"]],
  [/CONNECT_AGENT_TO_REPLICATION_SERVER|START_DATA_TRANSFER|UNSTABLE_NETWORK/, ["F7"]],
  [/AGENT_NOT_SEEN/, ["F2", "F3"]],
  [/PAIR_REPLICATION_SERVER_WITH_AGENT/, ["F4", "F7"]],
  [/BOOT_REPLICATION_SERVER|LAUNCH_REPLICATION_SERVER|CREATE_STAGING_DISKS|ATTACH_STAGING_DISKS/, ["F5"]],
  // Installer-side failures the operator sees on the source.
  [/INSTALLER|DOWNLOAD|S3_ENDPOINT|aws-replication-installer/i, ["F1"]],
  [/REGISTER|CreateSessionForMgn|ENDPOINT|mgn\.[a-z0-9-]+\.amazonaws\.com/i, ["F2", "F3"]],
  [/NAME RESOLUTION|RESOLVE|getaddrinfo|NXDOMAIN/i, ["F3"]],
];

/** The flows an MGN step/error points at; a user error when it names none. */
export function flowsForError(text: string): FlowId[] {
  const normalised = text.trim().replace(/^FAILED_TO_/, "");
  for (const [pattern, flows] of MAP) if (pattern.test(normalised)) return flows;
  throw new FerryError(
    "AWS_UNKNOWN_MGN_ERROR",
    `--from-error "${text}" names no MGN initiation step or error Ferry knows; use a step such as AUTHENTICATE_WITH_SERVICE, DOWNLOAD_REPLICATION_SOFTWARE, CONNECT_AGENT_TO_REPLICATION_SERVER or an error such as AGENT_NOT_SEEN`,
    { details: { value: text } },
  );
}
