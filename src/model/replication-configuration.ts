/**
 * Replication settings: the template (account-wide defaults) and the
 * per-server configuration derived from it. Which fields act in Ferry:
 * `bandwidthThrottling` (applied by the agent, live), `dataPlaneRouting`
 * (which replicator address the agent dials), `useDedicatedReplicationServer`
 * and `stagingAreaSubnetId` (replicator pool selection). The rest are stored
 * and returned as MGN does. `ebsEncryption: CUSTOM` is refused: Ferry does not
 * encrypt staging data with customer keys.
 */
import type {
  CreateReplicationConfigurationTemplateRequest,
  LaunchConfiguration,
  ReplicationConfiguration,
  ReplicationConfigurationTemplate,
} from "./mgn-shapes.gen.ts";
import { validationError } from "./api-errors.ts";

/** The template fields copied into a server's configuration. */
export type ReplicationSettings = Omit<CreateReplicationConfigurationTemplateRequest, "tags">;

/** Used for a server registered before any template exists. */
export const DEFAULT_REPLICATION_SETTINGS: ReplicationSettings = {
  stagingAreaSubnetId: "",
  associateDefaultSecurityGroup: true,
  replicationServersSecurityGroupsIDs: [],
  replicationServerInstanceType: "t3.small",
  useDedicatedReplicationServer: false,
  defaultLargeStagingDiskType: "GP3",
  ebsEncryption: "DEFAULT",
  bandwidthThrottling: 0,
  dataPlaneRouting: "PRIVATE_IP",
  createPublicIP: false,
  stagingAreaTags: {},
  useFipsEndpoint: false,
  internetProtocol: "IPV4",
  storeSnapshotOnLocalZone: false,
};

/** Refuses settings Ferry cannot honour, with MGN's ValidationException. */
export function checkSettingsSupported(s: {
  ebsEncryption?: string | undefined;
  ebsEncryptionKeyArn?: string | undefined;
}): void {
  if (s.ebsEncryption === "CUSTOM" || s.ebsEncryptionKeyArn !== undefined) {
    throw validationError(
      "ebsEncryption CUSTOM is not supported by Ferry: staging data is not encrypted with customer-managed keys. Use ebsEncryption DEFAULT and leave ebsEncryptionKeyArn unset.",
      "fieldValidationFailed",
      [{ name: "ebsEncryption", message: "CUSTOM is not supported; use DEFAULT" }],
    );
  }
}

export function settingsFromTemplate(t: ReplicationConfigurationTemplate | undefined): ReplicationSettings {
  if (!t) return structuredClone(DEFAULT_REPLICATION_SETTINGS);
  const { replicationConfigurationTemplateID: _id, arn: _arn, tags: _tags, ...rest } = t;
  return {
    ...structuredClone(DEFAULT_REPLICATION_SETTINGS),
    ...structuredClone(rest),
  } as ReplicationSettings;
}

export function initialReplicationConfiguration(
  sourceServerID: string,
  name: string,
  settings: ReplicationSettings,
  disks: { deviceName?: string | undefined }[],
  bootDevice: string | undefined,
): ReplicationConfiguration {
  return {
    sourceServerID,
    name,
    ...settings,
    replicatedDisks: disks.map((d) => ({
      deviceName: d.deviceName ?? "",
      isBootDisk: d.deviceName !== undefined && d.deviceName === bootDevice,
      stagingDiskType: "AUTO",
    })),
  };
}

export function initialLaunchConfiguration(sourceServerID: string, name: string): LaunchConfiguration {
  return {
    sourceServerID,
    name,
    launchDisposition: "STARTED",
    targetInstanceTypeRightSizingMethod: "BASIC",
    copyPrivateIp: false,
    copyTags: false,
    licensing: { osByol: true },
    bootMode: "USE_SOURCE",
    postLaunchActions: { deployment: "TEST_AND_CUTOVER", ssmDocuments: [] },
    enableMapAutoTagging: false,
  };
}

/** Copies the defined (non-undefined) fields of `patch` over `base`. */
export function applyPatch<T extends object>(base: T, patch: Partial<T>): T {
  const next = { ...base };
  for (const [k, v] of Object.entries(patch)) {
    if (v !== undefined) (next as Record<string, unknown>)[k] = v;
  }
  return next;
}
