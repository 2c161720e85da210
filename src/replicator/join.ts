/**
 * A replicator joining a control plane (the `pool` provisioner): it registers
 * with its addresses, pool and certificate fingerprint, learns the CA whose
 * client certificates it must accept, and keeps registering as its heartbeat
 * so the control plane knows it is alive and assigns source servers to it.
 * Each answer says which source servers may replicate to it now
 * (`onAnswer`); `refresh` asks again at once, between heartbeats.
 */
import type { Logger } from "../lib/log.ts";
import { createSignedClient, type SignedClientCredentials } from "../lib/signed-client.ts";
import type { StaticHosts } from "../lib/static-resolve.ts";
import {
  REPLICATOR_REGISTER_PATH,
  ReplicatorRegisterResponse,
  type ReplicatorRegisterRequest,
} from "../model/replicator.ts";

type RegisterAnswer = ReplicatorRegisterResponse;

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
  /** Each successful registration's answer (the first included), before `joinControlPlane` resolves for the first. */
  onAnswer?(answer: RegisterAnswer): void;
}

export interface Membership {
  replicatorId: string;
  /** The CA of the source servers' client certificates. */
  clientCaPem: string;
  /**
   * Registers now, between heartbeats (the answer goes to `onAnswer`), in a
   * registration that starts after the call; concurrent calls share one.
   * Rejects when the control plane cannot be reached.
   */
  refresh(): Promise<void>;
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
  const call = async () => {
    const answer = await client.call(REPLICATOR_REGISTER_PATH, body(), ReplicatorRegisterResponse);
    o.onAnswer?.(answer);
    return answer;
  };
  let inFlight: Promise<RegisterAnswer> | undefined;
  const register = () => (inFlight ??= call().finally(() => (inFlight = undefined)));
  // A refresh must start after it was asked for (an answer listed before then may miss a new assignment).
  let queued: Promise<RegisterAnswer> | undefined;
  const registerAfterNow = () =>
    (queued ??= (async () => {
      await inFlight?.catch(() => {});
      queued = undefined;
      return register();
    })());
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
    async refresh() {
      if (stopped) throw new Error("the replicator left the control plane");
      await registerAfterNow();
    },
    stop() {
      stopped = true;
      clearTimeout(timer);
      client.close();
    },
  };
}
