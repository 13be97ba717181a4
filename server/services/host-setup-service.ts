/**
 * Host setup as an owner service (`hostSetup:get` over IPC, `GET /v1/vm/{id}/host-setup` over REST): the
 * domain XML fragment, the host command and the notes for a profile, with where hosts reach the listener
 * (its URL, TLS fingerprint, host token, SSH tunnel). For SEV-SNP profiles it adds the measurement rows and
 * the ID block signed with the VM's ID key (SnpIdKeyService); `snpKeys` creates the keys on request.
 */
import { DomainError } from '../../app/errors';
import {
  buildHostSetup,
  type HostSetup,
  type HostSetupOptions,
  type SnpKeysResult,
} from '../../app/host-setup';
import type { ProfileStore } from './profile-store';
import type { SnpIdKeyService } from './snp-id-keys';

/** Where hosts and guests reach this service right now. */
export interface ListenerReach {
  url: string;
  tlsFingerprint?: string;
  hostTokenRequired: boolean;
}

export interface HostSetupServiceDeps {
  profiles: ProfileStore;
  listener: () => ListenerReach;
  /** The SSH reverse tunnel's state; a set tunnel changes the address hosts use. */
  tunnel: () => Promise<{ state: string; remotePort?: number; target?: string }>;
  snp: SnpIdKeyService;
}

export class HostSetupService {
  constructor(private readonly deps: HostSetupServiceDeps) {}

  async get(vmId: string, opts: HostSetupOptions = {}): Promise<HostSetup> {
    const profile = this.deps.profiles.get(vmId);
    if (!profile) throw new DomainError('unknown-vm', `no VM profile ${vmId}`);
    const reach = this.deps.listener();
    // With a tunnel set, the host calls its own loopback port, which ssh forwards here.
    const tunnel = await this.deps.tunnel();
    const tunnelSet = tunnel.state !== 'off' && tunnel.remotePort !== undefined;
    const snp = profile.scheme === 'amd-sev-snp' ? await this.deps.snp.hostSetup(vmId, opts) : undefined;
    return buildHostSetup({
      profile,
      listenerUrl: reach.url,
      ...(reach.tlsFingerprint !== undefined ? { tlsFingerprint: reach.tlsFingerprint } : {}),
      hostTokenRequired: reach.hostTokenRequired,
      ...(tunnelSet
        ? {
            tunnel: {
              remotePort: tunnel.remotePort!,
              ...(tunnel.target !== undefined ? { target: tunnel.target } : {}),
            },
          }
        : {}),
      ...(snp ? { snp } : {}),
    });
  }

  /** Creates the VM's ID key (and the owner's author key) on request; see SnpIdKeyService.ensureKeys. */
  snpKeys(vmId: string, opts: { authorKey?: boolean; replace?: boolean } = {}): Promise<SnpKeysResult> {
    return this.deps.snp.ensureKeys(vmId, opts);
  }
}
