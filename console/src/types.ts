// The shapes the console reads, as docs/contract.graphql names them (only the fields the console asks for).

export type Role = "OPERATOR" | "ADMIN" | "MEMBER" | "AUDITOR";
export type PodState = "PENDING" | "SCHEDULED" | "BOOTING" | "RUNNING" | "STOPPING" | "STOPPED" | "FAILED" | "UNSCHEDULABLE";

export interface Me {
  tokenId: string;
  role: Role;
  tenant: { id: string; name: string } | null;
}

export interface MicroVm {
  id: string;
  podId: string;
  hostId: string;
  state: PodState;
  bootMs: number | null;
  ip4?: string | null;
  ip6?: string | null;
  startedAt?: string | null;
  exitCode?: number | null;
}

export interface Pod {
  id: string;
  name: string;
  namespace: string;
  tenantId: string;
  image: string;
  imageDigest?: string | null;
  cpu: number;
  memoryMiB: number;
  replicas: number;
  confidential: boolean;
  state: PodState;
  reason: string | null;
  version: number;
  createdAt: string;
  instances: MicroVm[];
  attestation?: { measurement: string; verified: boolean; verifiedAt: string | null } | null;
}

export interface Host {
  id: string;
  name: string;
  zone: string;
  rack: string;
  role: "COMPUTE" | "STORAGE" | "INGRESS";
  state: "READY" | "CORDONED" | "DRAINING" | "FAILED";
  sevSnp: boolean;
  cpu: number;
  memoryMiB: number;
  cpuUsed: number;
  memoryUsedMiB: number;
  lastHeartbeat?: string | null;
  microVms: MicroVm[];
}

export interface Replica {
  hostId: string;
  state: string;
}

export interface Volume {
  id: string;
  name: string;
  tenantId: string;
  class: string;
  sizeGiB: number;
  zone: string | null;
  state: string;
  replicas: Replica[];
  desiredReplicas: number;
  encrypted: boolean;
  attachedTo: string[];
  version: number;
}

export interface Ingress {
  id: string;
  name: string;
  tenantId: string;
  kind: string;
  state: string;
  readiness: string;
  replicas: { hostId: string; zone: string }[];
  routes: { host: string; path: string; podId: string; port: number }[];
  domains: { name: string; verified: boolean; verificationToken: string }[];
  publicAddress: string | null;
  warnings: string[];
}

export interface AuditEntry {
  seq: number;
  at: string;
  tenantId: string | null;
  actor: string;
  action: string;
  resourceId: string | null;
  outcome: string;
  correlationId: string | null;
  hash: string;
}

export interface EventRecord {
  seq: number;
  at: string;
  streamId: string;
  version: number;
  type: string;
  data: unknown;
  actor: string | null;
  correlationId: string | null;
}

/** An archive that holds what a timeline's window lost from the log (timelineArchives). */
export interface TimelineArchive {
  file: string;
  fromSeq: number;
  toSeq: number;
  removedBefore: string | null;
}

/** extensions.archived.timeline: the timeline answers from answersAfter on; the rest is in the archives named. */
export interface ArchivedNote {
  answersAfter: string;
  archives: string[];
  message: string;
}

export interface PlatformSnapshot {
  asOf: string;
  hosts: Host[];
  pods: Pod[];
}

export interface Tenant {
  id: string;
  name: string;
}
