/**
 * A replicator joining a control plane (the `pool` provisioner): it registers
 * with its addresses, pool and certificate fingerprint, learns the CA whose
 * client certificates it must accept, and keeps registering as its heartbeat
 * so the control plane knows it is alive and assigns source servers to it.
 */
import type { Logger } from "../lib/log.ts";
import { createSignedClient, type SignedClientCredentials } from "../lib/signed-client.ts";
import type { StaticHosts } from "../lib/static-resolve.ts";
import {
  REPLICATOR_REGISTER_PATH,
  ReplicatorRegisterResponse,
  type ReplicatorRegisterRequest,
} from "../model/replicator.ts";

export interface JoinOptions {
  endpoint: string;
  region: string;
  credentials: SignedClientCredentials;
  caPem?: string;
  caFingerprint?: string;
  hosts?: StaticHosts;
  /** What each registration (the first and every heartbeat) sends; a function to send current figures. */
  registration: ReplicatorRegisterRequest | (() => ReplicatorRegisterRequest);
  log: Logger;
}

export interface Membership {
  replicatorId: string;
  /** The CA of the source servers' client certificates. */
  clientCaPem: string;
  /** Stops the heartbeat. */
  stop(): void;
}

export async function joinControlPlane(o: JoinOptions): Promise<Membership> {
  const client = createSignedClient({
    endpoint: o.endpoint,
    region: o.region,
    credentials: o.credentials,
    ...(o.caPem ? { caPem: o.caPem } : {}),
    ...(o.caFingerprint ? { caFingerprint: o.caFingerprint } : {}),
    ...(o.hosts ? { hosts: o.hosts } : {}),
  });
  const body = () => (typeof o.registration === "function" ? o.registration() : o.registration);
  const register = () => client.call(REPLICATOR_REGISTER_PATH, body(), ReplicatorRegisterResponse);
  let first;
  try {
    first = await register();
  } catch (err) {
    client.close();
    throw err;
  }
  o.log.info("joined the control plane", { endpoint: o.endpoint, replicatorId: first.replicatorId });
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const beat = (seconds: number) => {
    timer = setTimeout(async () => {
      if (stopped) return;
      let next = seconds;
      try {
        next = (await register()).heartbeatIntervalSeconds;
      } catch (err) {
        o.log.warn("heartbeat to the control plane failed; retrying", { error: (err as Error).message });
      }
      if (!stopped) beat(next);
    }, seconds * 1000);
    timer.unref();
  };
  beat(first.heartbeatIntervalSeconds);
  return {
    replicatorId: first.replicatorId,
    clientCaPem: first.clientCaPem,
    stop() {
      stopped = true;
      clearTimeout(timer);
      client.close();
    },
  };
}
