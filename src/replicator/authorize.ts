/**
 * The data plane follows the control plane. A joined replicator's heartbeat
 * answer lists the source servers assigned to it that may replicate (and,
 * for the message, those that may not: disconnected, cut over, archived).
 * A HELLO passes the certificate check (the certificate names the server)
 * and then this list; a miss asks the control plane again before refusing,
 * since a server assigned since the last heartbeat dials at once. The
 * heartbeat answer that drops a server ends its live sessions (`apply`), and
 * its writes are refused at the store from then on.
 *
 * A control-plane outage stops nothing that the last answer allowed: the
 * last answer stays in force until a new one arrives. See docs/installer.md,
 * "What a disconnect revokes".
 */
import { FerryError } from "../lib/errors.ts";
import type { Logger } from "../lib/log.ts";
import type { ReplicationRefusal, ReplicatorAuthorization } from "../model/replicator.ts";
import { certificateAuthorizer } from "./server.ts";
import type { Authorize } from "./session-host.ts";
import type { AppendableObject, ObjectStore } from "./store/object-store.ts";

/** What the last answer of the control plane said, as sets. */
export interface AuthorizationView {
  digest: string;
  allowed: ReadonlySet<string>;
  refused: ReadonlyMap<string, ReplicationRefusal>;
}

/**
 * What the replicator knows when it decides: only its copy (`cached`), an
 * answer asked for after the HELLO arrived (`refreshed`), or its copy after
 * the control plane could not be reached (`unreachable`, with why).
 */
export type Knowledge = { kind: "cached" } | { kind: "refreshed" } | { kind: "unreachable"; error: string };

export type Decision =
  { allow: true } | { allow: false; refresh: true } | { allow: false; error: FerryError };

const REASONS: Record<ReplicationRefusal, string> = {
  DISCONNECTED: "is disconnected from the service (DisconnectFromService)",
  CUTOVER: "was cut over and finalized (FinalizeCutover)",
  ARCHIVED: "is archived (MarkAsArchived)",
};

/**
 * The decision table. No view (no control plane answer carried one: an
 * older control plane, or more servers than an answer holds): certificates
 * alone decide. Allowed: pass. Otherwise ask again first (`cached`), then
 * refuse: a known refusal as AUTH_FAILED (the agent stops retrying), a server
 * the control plane does not place here as NOT_ASSIGNED (the agent retries:
 * it may be on its way here, or the control plane is down).
 */
export function decide(view: AuthorizationView | undefined, id: string, knowing: Knowledge): Decision {
  if (!view || view.allowed.has(id)) return { allow: true };
  if (knowing.kind === "cached") return { allow: false, refresh: true };
  return { allow: false, error: refusalError(view, id, knowing) };
}

export function refusalError(view: AuthorizationView, id: string, knowing: Knowledge): FerryError {
  const reason = view.refused.get(id);
  if (reason) {
    return new FerryError(
      "AUTH_FAILED",
      `source server ${id} ${REASONS[reason]}: reinstall the agent to replicate again`,
      { details: { sourceServerId: id, reason } },
    );
  }
  const why =
    knowing.kind === "unreachable"
      ? ` (the control plane could not be asked again: ${knowing.error}; it decides once it answers)`
      : "";
  return new FerryError(
    "NOT_ASSIGNED",
    `source server ${id} is not assigned to this replicator by the control plane (deleted, or assigned to another replicator)${why}: the agent learns where to replicate from its next report`,
    { details: { sourceServerId: id } },
  );
}

export interface ControlPlaneAuthorizationOptions {
  log: Logger;
  /** How long a HELLO waits for the control plane's answer. @default 5000 */
  refreshTimeoutMs?: number;
  /** At most one refresh per this many ms, however many HELLOs miss. @default 1000 */
  minRefreshIntervalMs?: number;
}

/** The replicator's copy of the control plane's authorization, and the checks that use it. */
export class ControlPlaneAuthorization {
  private view: AuthorizationView | undefined;
  private refreshFn: (() => Promise<void>) | undefined;
  private lastRefreshAt = -Infinity;
  private readonly log: Logger;
  private readonly refreshTimeoutMs: number;
  private readonly minRefreshIntervalMs: number;

  constructor(o: ControlPlaneAuthorizationOptions) {
    this.log = o.log;
    this.refreshTimeoutMs = o.refreshTimeoutMs ?? 5000;
    this.minRefreshIntervalMs = o.minRefreshIntervalMs ?? 1000;
  }

  /** How to ask the control plane now (`Membership.refresh`); set once joined. */
  setRefresh(refresh: () => Promise<void>): void {
    this.refreshFn = refresh;
  }

  /** The digest to send with the next registration (lists come back only when they changed). */
  digest(): string | undefined {
    return this.view?.digest;
  }

  /**
   * Takes a registration's answer; returns the servers allowed before and
   * not now (their writes are refused from now on).
   */
  update(answer: ReplicatorAuthorization | undefined): string[] {
    const before = this.view;
    if (!answer) {
      if (before) this.log.warn("the control plane sent no authorization: client certificates alone decide");
      this.view = undefined;
      return [];
    }
    if (!answer.allowedSourceServerIDs) {
      // Unchanged since our digest; a digest we do not hold would be a control-plane fault: keep ours.
      if (answer.digest !== before?.digest)
        this.log.warn("authorization without lists for a digest this replicator does not hold", {
          digest: answer.digest,
        });
      return [];
    }
    const view: AuthorizationView = {
      digest: answer.digest,
      allowed: new Set(answer.allowedSourceServerIDs),
      refused: new Map((answer.refused ?? []).map((r) => [r.sourceServerID, r.reason])),
    };
    this.view = view;
    const dropped = before ? [...before.allowed].filter((id) => !view.allowed.has(id)) : [];
    if (dropped.length)
      this.log.info("source servers may no longer replicate here", { sourceServerIds: dropped.slice(0, 20) });
    return dropped;
  }

  /** The refusal of a write to a server's staging volumes, from the last answer (no refresh). */
  /** Applies a heartbeat answer and ends the live sessions of the servers it no longer allows. */
  apply(
    answer: ReplicatorAuthorization | undefined,
    sessions: { endSessions(sourceServerId: string, error: FerryError): number },
  ): void {
    for (const id of this.update(answer)) {
      const error = this.writeRefusal(id);
      if (!error) continue;
      const n = sessions.endSessions(id, error);
      if (n)
        this.log.info("ended the sessions of a server that may no longer replicate", {
          sourceServerId: id,
          sessions: n,
        });
    }
  }

  writeRefusal(sourceServerId: string): FerryError | undefined {
    const view = this.view;
    if (!view || view.allowed.has(sourceServerId)) return undefined;
    return refusalError(view, sourceServerId, { kind: "refreshed" });
  }

  /** Whether a HELLO of this server may proceed: the last answer, else a fresh one (bounded). */
  async check(sourceServerId: string): Promise<void> {
    const first = decide(this.view, sourceServerId, { kind: "cached" });
    if (first.allow) return;
    if (!("refresh" in first)) throw first.error;
    const knowing = await this.refresh();
    const then = decide(this.view, sourceServerId, knowing);
    if (!then.allow) throw "error" in then ? then.error : refusalError(this.view!, sourceServerId, knowing);
  }

  /** Certificates (the CN names the server), then the control plane's list. */
  authorizer(): Authorize {
    const certificates = certificateAuthorizer();
    return async (hello, peer) => {
      await certificates(hello, peer);
      await this.check(hello.sourceServerId);
    };
  }

  private async refresh(): Promise<Knowledge> {
    const refresh = this.refreshFn;
    if (!refresh) return { kind: "unreachable", error: "not joined to a control plane yet" };
    const wait = this.lastRefreshAt + this.minRefreshIntervalMs - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    this.lastRefreshAt = performance.now();
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        refresh(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`no answer within ${this.refreshTimeoutMs} ms`)),
            this.refreshTimeoutMs,
          );
        }),
      ]);
      return { kind: "refreshed" };
    } catch (err) {
      this.log.warn("cannot ask the control plane about a source server; its last answer decides", {
        error: (err as Error).message,
      });
      return { kind: "unreachable", error: (err as Error).message };
    } finally {
      clearTimeout(timer);
    }
  }
}

/**
 * The staging store as a source server's session writes it: every write
 * under `volumes/<server>/` first asks `refusal` (the last answer of the
 * control plane), so a server dropped from it writes nothing more and its
 * live session ends with the refusal on its next write. Reads, deletes and
 * releases pass (a release must still remove the volumes).
 */
export function guardStore<S extends ObjectStore>(
  store: S,
  refusal: (sourceServerId: string) => FerryError | undefined,
): S {
  const check = (key: string) => {
    const id = /^volumes\/([^/]+)\//.exec(key)?.[1];
    const err = id === undefined ? undefined : refusal(id);
    if (err) throw err;
  };
  return new Proxy(store, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop, target);
      if (typeof value !== "function") return value;
      const fn = value as (...args: unknown[]) => unknown;
      if (prop === "put" || prop === "putMeta") {
        return async (key: string, ...rest: unknown[]) => {
          check(key);
          return fn.call(target, key, ...rest);
        };
      }
      if (prop === "openAppendable") {
        return async (key: string, ...rest: unknown[]) => {
          check(key);
          const app = (await fn.call(target, key, ...rest)) as AppendableObject;
          return guardAppendable(app, () => check(key));
        };
      }
      return fn.bind(target);
    },
  });
}

function guardAppendable(app: AppendableObject, check: () => void): AppendableObject {
  return new Proxy(app, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop, target);
      if (typeof value !== "function") return value;
      const fn = value as (...args: unknown[]) => unknown;
      if (prop === "append") {
        return async (...args: unknown[]) => {
          check();
          return fn.apply(target, args);
        };
      }
      return fn.bind(target);
    },
  });
}
