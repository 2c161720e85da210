/**
 * What a failed check on a flow most likely means in terms of the setup, and
 * the change that fixes it. Pure: the probes (src/net/doctor) and the agent
 * (its connection failures) describe what they saw as a `FlowFailure`; this
 * turns it into a finding. A dropped packet (timeout), a refused one (reset),
 * no route, a name that does not resolve and a certificate that does not
 * match each get their own cause.
 */
import type { FlowFinding, FlowId, ObservedFlowFailure } from "./flows.ts";

/** Which endpoint a flow goes to. */
export type FlowRole = "service" | "object-store" | "replicator";

/** What a check saw when it failed. Socket errors keep Node's codes (ETIMEDOUT, ECONNREFUSED, …). */
export type FlowFailure =
  | { check: "resolve"; name: string; error: string }
  | { check: "resolve-address"; name: string; addresses: string[]; expected?: string }
  | {
      check: "connect";
      address: string;
      port: number;
      error: string;
      /** Only for the data plane: the routing that chose `address`. */
      routing?: "PRIVATE_IP" | "PUBLIC_IP";
      /** With PUBLIC_IP: the replicator's private address, and whether it answered. */
      privateAddress?: string;
      privateReachable?: boolean;
      /** Every other endpoint in the staging network timed out too (the return route is the common part). */
      stagingAllTimedOut?: boolean;
    }
  | { check: "tls"; address: string; error: string; pinned?: string; presented?: string[]; name?: string }
  | { check: "clock"; skewSeconds: number; via: "http-date" | "sigv4"; serverTime?: string }
  | { check: "auth"; errorType: string; message: string }
  | { check: "assignment"; reason: "not-registered" | "none" | "not-running"; state?: string }
  | { check: "pairing"; address: string; error: string; expected?: string; got?: string }
  /** The package's hash file answered `status`: from the bucket, or (without --s3-endpoint) from the control plane. */
  | { check: "http"; url: string; status: number; from?: "object-store" | "control-plane" }
  | { check: "throughput"; bytesPerSecond: number; minimumBytesPerSecond: number }
  /** Seen on the replicator: connections from `peers` stay half-open (their SYN arrived, the reply never got back). */
  | { check: "return-path"; peers: string[]; port: number; noRoute?: boolean }
  /**
   * Seen by the control plane: a reporter's heartbeats (an agent's reports, a
   * replicator's registrations) stopped arriving: the last at `lastSeenAt`
   * (ISO 8601), counted as missing after `thresholdSeconds`.
   */
  | { check: "heartbeat"; who: string; ageSeconds: number; lastSeenAt?: string; thresholdSeconds?: number };

export interface FlowContext {
  flow: FlowId;
  role: FlowRole;
  /** The host the check ran on. */
  side: "source" | "replicator";
  /** This host's address toward the staging network, when known (for the rules in a fix). */
  localAddress?: string;
}

type Verdict = Pick<FlowFinding, "observed" | "cause" | "fix"> & { code: string };

const ROLE_NAMES: Record<FlowRole, string> = {
  service: "service endpoint",
  "object-store": "object-store endpoint",
  replicator: "replicator",
};

const TIMEOUT = new Set(["ETIMEDOUT", "ESOCKETTIMEDOUT", "TIMEOUT"]);
const REFUSED = new Set(["ECONNREFUSED", "ECONNRESET", "EPIPE"]);
const NO_ROUTE = new Set(["EHOSTUNREACH", "ENETUNREACH", "EADDRNOTAVAIL", "ENONET"]);
const NOT_FOUND = new Set(["ENOTFOUND", "EAI_NONAME", "EAI_AGAIN", "EAI_NODATA", "ENODATA"]);

/** How a socket error reads to an operator. */
export function describeSocketError(error: string): string {
  if (TIMEOUT.has(error)) return "no answer (timed out: the packets are dropped)";
  if (error === "ECONNREFUSED") return "refused (a reset came back: nothing listens, or a rule rejects)";
  if (error === "ECONNRESET") return "reset by the peer";
  if (error === "EHOSTUNREACH") return "no route to host (EHOSTUNREACH)";
  if (error === "ENETUNREACH") return "network unreachable (ENETUNREACH: no route)";
  if (NOT_FOUND.has(error)) return `name not resolved (${error})`;
  return error;
}

function from(c: FlowContext): string {
  return c.localAddress ? `from ${c.localAddress}` : `from the ${c.side}`;
}

export function classifyFailure(c: FlowContext, f: FlowFailure): Verdict {
  const who = ROLE_NAMES[c.role];
  switch (f.check) {
    case "resolve":
      return NOT_FOUND.has(f.error) || f.error === ""
        ? {
            code: "HOSTS_LINE_MISSING",
            observed: `${f.name} does not resolve (${f.error || "no address"})`,
            cause: `no hosts line (or resolver record) for ${f.name} on the ${c.side}`,
            fix: `add a line "<${who} private IP> ${f.name}" to /etc/hosts on the ${c.side} (or pass --resolve ${f.name}=<IP>, or point the resolver at an inbound endpoint)`,
          }
        : {
            code: "RESOLVER_FAILED",
            observed: `looking up ${f.name} failed (${f.error})`,
            cause: `the ${c.side}'s resolver does not answer`,
            fix: `add a hosts line for ${f.name} on the ${c.side}, or fix the resolver in /etc/resolv.conf`,
          };
    case "resolve-address":
      return {
        code: "NAME_WRONG_ADDRESS",
        observed: `${f.name} resolves to ${f.addresses.join(", ") || "nothing"}${f.expected ? `, not ${f.expected}` : ", not a private address"}`,
        cause: `${f.name} resolves to ${f.expected ? "another" : "a public"} address: the hosts line is wrong or missing and public DNS answers`,
        fix: `map ${f.name} to the ${who}'s private IP${f.expected ? ` ${f.expected}` : ""} in /etc/hosts on the ${c.side} (or --resolve ${f.name}=<IP>)`,
      };
    case "connect":
      return classifyConnect(c, f);
    case "tls":
      if (f.error === "CA_FINGERPRINT_MISMATCH") {
        return {
          code: "CA_FINGERPRINT_MISMATCH",
          observed: `the ${who} at ${f.address} presented ${f.presented?.join(", ") || "no certificate"}; none has the pinned CA fingerprint ${f.pinned ?? "?"}`,
          cause: "wrong CA fingerprint (--ca-fingerprint does not match the control plane's CA)",
          fix: "pin the fingerprint `ferry server` prints at start-up (or pass --ca-file with the CA's PEM)",
        };
      }
      if (/ALTNAME|HOSTNAME/.test(f.error)) {
        return {
          code: "TLS_NAME_MISMATCH",
          observed: `the ${who}'s certificate at ${f.address} does not hold the name ${f.name ?? "?"} (${f.error})`,
          cause: `the name used for the ${who} is not in its certificate (an IP address or another name)`,
          fix: `connect by the name in the certificate (with a hosts line or --resolve), or reissue the certificate with ${f.name ?? "that name"}`,
        };
      }
      return {
        code: "TLS_UNTRUSTED",
        observed: `TLS to the ${who} at ${f.address} failed: ${f.error}`,
        cause: `the ${who}'s certificate is not signed by the CA this host trusts`,
        fix:
          c.role === "service"
            ? "pass the control plane's CA with --ca-file, or pin it with --ca-fingerprint"
            : "pass the object store's CA with --s3-ca-file (or install it in the system's store)",
      };
    case "clock": {
      const ahead = f.skewSeconds > 0 ? "ahead of" : "behind";
      return {
        code: "CLOCK_SKEW",
        observed: `the server's clock is ${Math.abs(Math.round(f.skewSeconds))} s ${ahead} this host's (${f.via === "sigv4" ? "the signature was refused as expired" : "HTTP Date"}${f.serverTime ? `: ${f.serverTime}` : ""})`,
        cause:
          "clock skew between this host and the control plane: SigV4 signatures are valid for 5 minutes only",
        fix: "synchronise both clocks with NTP (chronyd or systemd-timesyncd; a server on the private network if there is no internet)",
      };
    }
    case "auth":
      return {
        code: "AUTH_REJECTED",
        observed: `the control plane refused the signed call: ${f.errorType}: ${f.message}`,
        cause:
          f.errorType === "UnrecognizedClientException"
            ? "the access key is unknown to this control plane (deleted, or from another one)"
            : /region/i.test(f.message)
              ? "the region does not match the control plane's"
              : "the secret access key does not match the key id",
        fix:
          c.side === "source"
            ? "use an install-scoped key from `ferry access-key create --scope install` (reinstall the agent if its own key was revoked) and the server's --region"
            : "use a replicator-scoped key from `ferry access-key create --scope replicator` and the server's --region",
      };
    case "assignment":
      return f.reason === "not-registered"
        ? {
            code: "NOT_REGISTERED",
            observed: "this source is not registered yet: no replicator to check",
            cause: "the agent is not installed",
            fix: "run the installer (it registers the server); then run `ferry doctor --source` again",
          }
        : f.reason === "not-running"
          ? {
              code: "REPLICATION_NOT_RUNNING",
              observed: `replication is ${f.state ?? "not running"}: the control plane assigns no replicator`,
              cause: "the operator stopped, paused or disconnected this server",
              fix: "start replication (aws mgn start-replication, or ferry's console) if it should run",
            }
          : {
              code: "NO_REPLICATOR_ASSIGNED",
              observed: "the control plane has no replicator for this server",
              cause:
                "no live replicator serves this server's staging subnet (pool) and routing: none joined, its heartbeats do not arrive (F4), or PUBLIC_IP is selected and no replicator has a public address",
              fix: "start `ferry replicator run --join …` in the staging network (check it with `ferry doctor --replicator`), with --pool matching stagingAreaSubnetId",
            };
    case "pairing":
      return f.error === "REPLICATOR_FINGERPRINT_MISMATCH"
        ? {
            code: "REPLICATOR_FINGERPRINT_MISMATCH",
            observed: `the replicator at ${f.address} presented ${f.got ?? "no certificate"}, expected ${f.expected ?? "?"}`,
            cause: "another service (or another replicator) answers on the replicator's address",
            fix: "check that the address the replicator registered (--private-address/--public-address) is its own",
          }
        : {
            code: "PAIRING_REFUSED",
            observed: `the replicator at ${f.address} refused this source's data-plane certificate (${f.error})`,
            cause:
              "the replicator does not trust the control plane that issued the source's certificate (it joined another one, or the source registered elsewhere)",
            fix: "join the replicator to the same control plane the agent registered with (ferry replicator run --join <endpoint>)",
          };
    case "http":
      if (f.from === "control-plane") {
        return f.status === 404
          ? {
              code: "PACKAGE_NOT_PUBLISHED",
              observed: `${f.url} answered 404 (the installer downloads from the control plane: no --s3-endpoint)`,
              cause: "no agent package has been published to this control plane",
              fix: "publish it there: `ferry release publish --endpoint <this control plane's URL>` with an operator key (or publish to a bucket and give the installer --s3-endpoint)",
            }
          : {
              code: "PACKAGE_REFUSED",
              observed: `${f.url} answered HTTP ${f.status}`,
              cause:
                f.status === 403
                  ? "the control plane refuses this key the download (a key of another control plane, or the wrong --region)"
                  : "the control plane answered the download with an error",
              fix:
                f.status === 403
                  ? "use an install key of this control plane (`ferry access-key create --scope install`) and its --region"
                  : "see the control plane's log for the request",
            };
      }
      return f.status === 404
        ? {
            code: "PACKAGE_NOT_PUBLISHED",
            observed: `${f.url} answered 404`,
            cause: "the agent package is not in the bucket (or --bucket/--path-style do not match it)",
            fix: "publish it with `ferry release publish`, and check --bucket and --path-style",
          }
        : {
            code: "OBJECT_STORE_REFUSED",
            observed: `${f.url} answered HTTP ${f.status}`,
            cause:
              f.status === 403
                ? "the object store (or the endpoint's policy) denies reading the package"
                : "the object store answered with an error",
            fix: "allow anonymous (or endpoint-policy) GetObject on the package's bucket",
          };
    case "return-path":
      return {
        code: "RETURN_ROUTE_MISSING",
        observed: f.noRoute
          ? `this host has no route to ${f.peers.join(", ")}: replies to port ${f.port} cannot leave`
          : `connections to port ${f.port} from ${f.peers.join(", ")} stay half-open: their SYN arrives, the SYN-ACK never gets back`,
        cause: `this host has no route back to ${f.peers.join(", ")} (the return route to the source network is missing)`,
        fix: `add a route for the source network via the private link on this host or its subnet's router (ip route add <source CIDR> via <link gateway>)`,
      };
    case "heartbeat":
      return classifyHeartbeat(c, f);
    case "throughput":
      return {
        code: "SLOW_DATA_PLANE",
        observed: `the data-plane probe moved ${formatRate(f.bytesPerSecond)}, under ${formatRate(f.minimumBytesPerSecond)}`,
        cause: "the private link (or a shaper on it) is slower than replication needs",
        fix: "check the link's bandwidth and any traffic shaping; set bandwidthThrottling to what it can carry",
      };
  }
}

function classifyConnect(c: FlowContext, f: Extract<FlowFailure, { check: "connect" }>): Verdict {
  const who = ROLE_NAMES[c.role];
  const port = f.port;
  const observed = `TCP ${port} to the ${who} at ${f.address}: ${describeSocketError(f.error)}`;
  if (c.role === "replicator" && f.routing === "PUBLIC_IP") {
    return {
      code: "PUBLIC_IP_ON_PRIVATE_LINK",
      observed: `${observed}; dataPlaneRouting is PUBLIC_IP${f.privateAddress ? ` (the private address ${f.privateAddress} ${f.privateReachable ? "answers" : "was not tried or does not answer"})` : ""}`,
      cause: "PUBLIC_IP is selected but the source reaches the staging network only over the private link",
      fix: "set dataPlaneRouting to PRIVATE_IP (aws mgn update-replication-configuration --source-server-id <id> --data-plane-routing PRIVATE_IP, or in the template)",
    };
  }
  if (NO_ROUTE.has(f.error)) {
    return {
      code: "NO_ROUTE",
      observed,
      cause: `the ${c.side} has no route to ${f.address} (the private link's route to the staging network is missing, or a rule answers host-unreachable)`,
      fix: `add a route on the ${c.side} for the staging network via the private link (ip route add <staging CIDR> via <link gateway>)`,
    };
  }
  if (TIMEOUT.has(f.error) && f.stagingAllTimedOut) {
    return {
      code: "RETURN_ROUTE_MISSING",
      observed: `${observed}; every endpoint in the staging network times out although this host routes to them`,
      cause: `the staging network has no route back to the ${c.side} (the return path over the private link is missing)`,
      fix: `add a route in the staging network for the ${c.side}'s network${c.localAddress ? ` (${c.localAddress})` : ""} via the private link (ip route add <source CIDR> via <link gateway>)`,
    };
  }
  if (TIMEOUT.has(f.error)) {
    const rule = `TCP ${port} ${from(c)}`;
    return {
      code: c.role === "replicator" ? "SG_1500_MISSING" : "SG_443_MISSING",
      observed,
      cause: `the ${who}'s security group drops ${rule} (no rule allows it)${
        c.role === "replicator" && c.side === "source"
          ? "; if the rule is there, the replicator has no route back to the source (`ferry doctor --replicator` on it tells: half-open connections)"
          : ""
      }`,
      fix: `allow ${rule} in the ${who}'s security group (nftables: add "ip saddr ${c.localAddress ?? "<source>"} tcp dport ${port} accept" to its input chain)`,
    };
  }
  if (REFUSED.has(f.error)) {
    return {
      code: "PORT_REFUSED",
      observed,
      cause:
        c.role === "replicator"
          ? `nothing listens on ${f.address}:${port} (the replicator is not running there, or registered another address), or a rule rejects`
          : `nothing listens on ${f.address}:${port} (the ${who} is down or the name maps to the wrong host)`,
      fix:
        c.role === "replicator"
          ? "start `ferry replicator run` listening on that address (check --listen and --private-address)"
          : `start the ${who}, or correct the address the name maps to`,
    };
  }
  return {
    code: "CONNECT_FAILED",
    observed,
    cause: `the connection to the ${who} failed`,
    fix: "see the observed error",
  };
}

/**
 * A reporter the control plane stopped hearing from. It cannot say why; the
 * likely causes are the paths its heartbeats take (in the doctor's terms),
 * and the doctor on that host names the one.
 */
function classifyHeartbeat(c: FlowContext, f: Extract<FlowFailure, { check: "heartbeat" }>): Verdict {
  const since = f.lastSeenAt ? ` since ${f.lastSeenAt}` : "";
  const age = `${Math.round(f.ageSeconds)} s ago`;
  if (c.flow === "F4") {
    const limit = f.thresholdSeconds === undefined ? "" : `; counted as gone after ${f.thresholdSeconds} s`;
    return {
      code: "REPLICATOR_NOT_SEEN",
      observed: `no heartbeat from ${f.who}${since} (${age}${limit})`,
      cause:
        "its heartbeats do not reach the service endpoint on 443 (F4): the service endpoint's security group does not allow TCP 443 from the replicator, the replicator has no hosts line (or resolver record) for the service name, the staging network's route to the service endpoint is missing, or the replicator's clock is skewed; or `ferry replicator run` stopped",
      fix: "run `ferry doctor --replicator` on the replicator host (it names the blocked flow and the change); if every flow passes there, start `ferry replicator run --join …` again",
    };
  }
  const limit = f.thresholdSeconds === undefined ? "" : `; AGENT_NOT_SEEN after ${f.thresholdSeconds} s`;
  return {
    code: "AGENT_NOT_SEEN",
    observed: `no report from ${f.who}${since} (${age}${limit})`,
    cause:
      "its reports do not reach the service endpoint on 443 (F2): the service endpoint's security group does not allow TCP 443 from the source, the source has no hosts line (or resolver record) for the service name (F3), or the staging network has no return route to the source; or the agent stopped (a signature refused for clock skew would be recorded and named here instead)",
    fix: "run `ferry doctor --source` on the source server: it names which (HOSTS_LINE_MISSING, SG_443_MISSING, RETURN_ROUTE_MISSING, CLOCK_SKEW) and the change; if every flow passes there, start the agent (systemctl start ferry-agent)",
  };
}

function formatRate(bps: number): string {
  return `${(bps / 1048576).toFixed(1)} MiB/s`;
}

/** A failure as a finding (`ok: false`). */
export function findingFor(c: FlowContext, f: FlowFailure): FlowFinding {
  const v = classifyFailure(c, f);
  return { flow: c.flow, ok: false, observed: v.observed, cause: v.cause, fix: v.fix, code: v.code };
}

/**
 * The failed flow the control plane shows for an agent it has stopped
 * hearing from (MGN's AGENT_NOT_SEEN), in the doctor's vocabulary: F2, what
 * it observed (the last report, how long ago) and the likely causes. When it
 * recorded an F2 cause itself (a signature refused for clock skew: only
 * after the last accepted report, which clears it), that cause, code and fix
 * instead, with the silence in what was observed.
 */
export function agentNotSeenFlow(
  sourceServerID: string,
  agent: { lastSeenAt?: number; registeredAt: number; failedFlow?: ObservedFlowFailure },
  now: number,
  notSeenAfterMs?: number,
): ObservedFlowFailure {
  const seen = agent.lastSeenAt ?? agent.registeredAt;
  const silence = findingFor(
    { flow: "F2", role: "service", side: "source" },
    {
      check: "heartbeat",
      who: `the agent of ${sourceServerID}`,
      ageSeconds: (now - seen) / 1000,
      lastSeenAt: new Date(seen).toISOString(),
      ...(notSeenAfterMs !== undefined ? { thresholdSeconds: notSeenAfterMs / 1000 } : {}),
    },
  );
  const recorded = agent.failedFlow;
  if (recorded?.flow === "F2") {
    return {
      ...recorded,
      observed: `${silence.observed}; the control plane refused its request at ${recorded.at}: ${recorded.observed}`,
    };
  }
  return { ...silence, ok: false, at: new Date(now).toISOString() };
}

/** Node's socket error code of a failed connection (timeouts we raise ourselves are ETIMEDOUT). */
export function socketErrorCode(err: unknown): string {
  if (typeof err === "object" && err !== null) {
    const code = (err as { code?: unknown }).code;
    if (typeof code === "string") return code;
  }
  return err instanceof Error ? err.message : String(err);
}

/**
 * What an agent's data-plane error code (src/agent/client.ts) says about
 * F7, for the failed flow it reports; undefined for errors that are not the
 * network's (a damaged disk, a full staging volume).
 */
export function dataPlaneFailure(
  code: string,
  address: string,
  port: number,
  routing?: "PRIVATE_IP" | "PUBLIC_IP",
): FlowFailure | undefined {
  const connect = (error: string): FlowFailure => ({
    check: "connect",
    address,
    port,
    error,
    ...(routing ? { routing } : {}),
  });
  switch (code) {
    case "REPLICATOR_TIMEOUT":
      return connect("ETIMEDOUT");
    case "REPLICATOR_REFUSED":
      return connect("ECONNREFUSED");
    case "REPLICATOR_RESET":
      return connect("ECONNRESET");
    case "REPLICATOR_NO_ROUTE":
      return connect("EHOSTUNREACH");
    case "REPLICATOR_NAME_UNRESOLVED":
      return { check: "resolve", name: address, error: "ENOTFOUND" };
    case "REPLICATOR_FINGERPRINT_MISMATCH":
      return { check: "pairing", address: `${address}:${port}`, error: code };
    case "REPLICATOR_CLOSED":
    case "AUTH_FAILED":
      return { check: "pairing", address: `${address}:${port}`, error: code };
    default:
      return undefined;
  }
}
