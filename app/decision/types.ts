/**
 * The decision's own input types, free of any transport: the listener maps the REST contract's bodies
 * (base64, kebab-case) to these, the IPC or a test may build them directly.
 */
import type { Scheme, VmProfile } from '../profile';

/** What a host presents at launch: its platform's certificates and what it asks for. */
export interface LaunchEvidence {
  /** The platform's PDH certificate (2084 bytes). */
  pdh: Uint8Array;
  /** PEK || OCA || CEK (3 x 2084 bytes). */
  certChain: Uint8Array;
  /** The chip id (cpu0-id, 64 bytes) the host CLAIMS; proven only against AMD's key server or a pin. */
  chipId?: Uint8Array;
  /** The ASK-signed CEK the host supplies (current firmware exports the chain's CEK unsigned). */
  cek?: Uint8Array;
  policy?: number;
  scheme?: Scheme;
}

/** What a host reports after LAUNCH_MEASURE. */
export interface LaunchReport {
  apiMajor: number;
  apiMinor: number;
  buildId: number;
  policy: number;
  /** LAUNCH_MEASURE's 48 bytes: measure(32) || mnonce(16). */
  measurement: Uint8Array;
  /** A hint that orders the SEV-ES tries; the whole expected set is always checked. */
  cpuCount?: number;
}

/** A launch names its VM, or (POST /v1/launch) lets the measurement pick among the policy's VMs. */
export type LaunchTarget = { vmId: string } | { vmId?: undefined };

/** Read access to the owner's VM profiles. */
export interface ProfileSource {
  get(id: string): VmProfile | undefined;
  list(): VmProfile[];
}

/** What a launch connection remembers for its validate. */
export interface LaunchFacts {
  /** The VM the launch named; undefined for POST /v1/launch. */
  vmId: string | undefined;
  /** The revision of that VM's profile at launch: a replaced or re-created VM is another VM. */
  profileRevision: string | undefined;
  policy: number;
  /** The PROVEN chip id (lower-case hex), or undefined when none was proven. */
  chipId: string | undefined;
}
