/**
 * The one way to change or read a VM's secret values: set, reveal, delete, copy to another VM, and the
 * value writes of a profile registration. IPC, the browser bridge, REST and the demo all call it, so every
 * transport gets the same rules: each operation writes an audit event (who, when, which VM and GUID, never
 * the value), and value buffers are wiped once stored or sent.
 */
import type { AuditEventInput } from '../../app/audit';
import { DomainError, isDomainError, messageOf } from '../../app/errors';
import {
  LUKS_PASSPHRASE_GUID,
  secretAccount,
  VmProfileSchema,
  type SecretRef,
  type VmProfile,
} from '../../app/profile';
import { wipe } from '../../app/sev/bytes';
import type { ProfileStore } from './profile-store';
import type { SecretStore } from './secret-store';

/** Who asked: the transport and, where known, the client's address. */
export interface SecretActor {
  via: 'ipc' | 'browser' | 'rest' | 'demo';
  client?: string;
}

/** A secret value to store under a VM, with the reference the profile keeps. */
export interface SecretValueInput {
  guid: string;
  kind: SecretRef['kind'];
  label?: string;
  /** SEV-SNP: the resource path the guest fetches it by (required on an SNP profile). */
  resource?: string;
  /** Wiped by the service once stored. */
  value: Uint8Array;
}

/** A revealed value; the caller wipes `value` once it has encoded it. */
export interface RevealedSecret {
  ref: SecretRef;
  value: Uint8Array;
}

export interface SecretServiceDeps {
  store: SecretStore;
  profiles: Pick<ProfileStore, 'get' | 'put' | 'flushed'>;
  audit: { appendDurable(e: AuditEventInput): Promise<unknown> };
}

export class SecretService {
  constructor(private readonly deps: SecretServiceDeps) {}

  /** What keeps the values (OS keychain or memory), for the UI and logs. */
  get kind(): SecretStore['kind'] {
    return this.deps.store.kind;
  }
  get description(): string {
    return this.deps.store.description;
  }

  /** Stores the value and puts its reference in the VM's profile (replacing one with the same GUID). */
  async set(
    vmId: string,
    input: SecretValueInput,
    actor: SecretActor,
  ): Promise<{ ref: SecretRef; profile: VmProfile }> {
    try {
      refuseRawDiskPassphrase(input);
      const profile = this.requireProfile(vmId);
      const previous = profile.secrets.find((s) => s.guid === input.guid);
      const ref: SecretRef = {
        guid: input.guid,
        kind: input.kind,
        ...(input.label ? { label: input.label } : {}),
        ...(input.resource ? { resource: input.resource } : {}),
      };
      const secrets = [...profile.secrets.filter((s) => s.guid !== input.guid), ref];
      // Checked before the keychain write: a refused ref (an SNP secret without its resource path, a
      // path named twice, a path on an SEV profile) leaves no value behind.
      const planned = VmProfileSchema.safeParse({ ...profile, secrets });
      if (!planned.success) {
        const i = planned.error.issues[0];
        throw new DomainError(
          'bad-arguments',
          i ? `${i.path.join('.') || 'profile'}: ${i.message}` : 'the secret does not fit the profile',
        );
      }
      await this.deps.store.set(secretAccount(vmId, input.guid), input.value);
      const updated = this.deps.profiles.put({ ...profile, secrets });
      await this.deps.profiles.flushed();
      await this.audit(actor, vmId, 'ok', previous ? 'replaced' : 'stored', ref, {
        ...(previous && previous.kind !== ref.kind ? { replacedKind: previous.kind } : {}),
      });
      return { ref, profile: updated };
    } finally {
      wipe(input.value);
    }
  }

  /**
   * Stores values for a profile being registered (REST PUT /v1/vm); the caller writes the profile with
   * their references. Each write is audited; values are wiped.
   */
  async storeValues(vmId: string, inputs: SecretValueInput[], actor: SecretActor): Promise<void> {
    try {
      // Every input is checked before the first write: a refused registration stores nothing.
      for (const input of inputs) refuseRawDiskPassphrase(input);
      for (const input of inputs) {
        await this.deps.store.set(secretAccount(vmId, input.guid), input.value);
        await this.audit(actor, vmId, 'ok', 'stored', { guid: input.guid, kind: input.kind });
      }
    } finally {
      for (const input of inputs) wipe(input.value);
    }
  }

  /** Whether a value is stored (read and wiped at once; not a reveal, so not audited). */
  async has(vmId: string, guid: string): Promise<boolean> {
    const value = await this.deps.store.get(secretAccount(vmId, guid));
    if (value) wipe(value);
    return value !== undefined;
  }

  /** Reads a value for the owner to see. The reveal is audited before the value is returned. */
  async reveal(vmId: string, guid: string, actor: SecretActor): Promise<RevealedSecret> {
    const profile = this.requireProfile(vmId);
    const ref = profile.secrets.find((s) => s.guid === guid);
    if (!ref) throw new DomainError('unknown-secret', `VM ${vmId} has no secret ${guid}`);
    const value = await this.deps.store.get(secretAccount(vmId, guid));
    if (!value) {
      throw new DomainError(
        'secret-missing',
        `the ${this.deps.store.kind} store holds no value for ${vmId}/${guid}`,
      );
    }
    try {
      await this.audit(actor, vmId, 'ok', 'revealed', ref);
    } catch (e) {
      wipe(value);
      throw e;
    }
    return { ref, value };
  }

  /** Deletes the value and its reference; returns the profile as it is now. */
  async delete(vmId: string, guid: string, actor: SecretActor): Promise<VmProfile> {
    const profile = this.requireProfile(vmId);
    const ref = profile.secrets.find((s) => s.guid === guid);
    if (!ref) throw new DomainError('unknown-secret', `VM ${vmId} has no secret ${guid}`);
    await this.deps.store.delete(secretAccount(vmId, guid));
    const updated = this.deps.profiles.put({
      ...profile,
      secrets: profile.secrets.filter((s) => s.guid !== guid),
    });
    await this.deps.profiles.flushed();
    await this.audit(actor, vmId, 'ok', 'deleted', ref);
    return updated;
  }

  /** Deletes stored values by GUID (a replaced or deleted VM's stale values); audited per value. */
  async deleteValues(vmId: string, guids: string[], actor: SecretActor): Promise<void> {
    for (const guid of guids) {
      if (await this.deps.store.delete(secretAccount(vmId, guid))) {
        await this.audit(actor, vmId, 'ok', 'deleted', { guid });
      }
    }
  }

  /** Every value stored under a VM id (its accounts), e.g. after the VM was deleted. */
  async deleteAll(vmId: string, actor: SecretActor): Promise<void> {
    const prefix = secretAccount(vmId, '');
    const guids = (await this.deps.store.list(prefix)).map((a) => a.slice(prefix.length));
    await this.deleteValues(vmId, guids, actor);
  }

  /**
   * Copies a profile under a new id with its secrets: each value is read and written under the new id. A
   * secret that cannot be copied (keychain locked, value missing) is left out of the copy and named in
   * the warnings; the copy itself is still made.
   */
  async duplicateProfile(
    sourceId: string,
    newId: string,
    actor: SecretActor,
  ): Promise<{ profile: VmProfile; warnings: string[] }> {
    const source = this.requireProfile(sourceId);
    if (this.deps.profiles.get(newId))
      throw new DomainError('vm-exists', `a VM profile ${newId} exists already`);
    const copied: SecretRef[] = [];
    const warnings: string[] = [];
    for (const ref of source.secrets) {
      const what = `secret ${ref.label ?? ref.guid}`;
      let value: Uint8Array | undefined;
      try {
        value = await this.deps.store.get(secretAccount(source.id, ref.guid));
      } catch (e) {
        warnings.push(`${what} was not copied: ${messageOf(e)}`);
        continue;
      }
      if (!value) {
        warnings.push(
          `${what} was not copied: the ${this.deps.store.kind} store holds no value for ${source.id}`,
        );
        continue;
      }
      try {
        await this.deps.store.set(secretAccount(newId, ref.guid), value);
        copied.push(ref);
      } catch (e) {
        warnings.push(`${what} was not copied: ${messageOf(e)}`);
      } finally {
        wipe(value);
      }
    }
    const { createdAt: _c, updatedAt: _u, ...fields } = source;
    let profile: VmProfile;
    try {
      profile = this.deps.profiles.put({
        ...fields,
        id: newId,
        name: `${source.name} (copy)`,
        secrets: copied,
      });
      await this.deps.profiles.flushed();
    } catch (e) {
      // No orphan values under an id that has no profile.
      for (const ref of copied) await this.deps.store.delete(secretAccount(newId, ref.guid)).catch(() => {});
      throw e;
    }
    await this.deps.audit.appendDurable({
      type: 'profile',
      result: 'ok',
      vmId: newId,
      ...(actor.client ? { client: actor.client } : {}),
      message: `VM ${newId} registered as a copy of ${source.id}`,
      details: { via: actor.via, secrets: copied.map((r) => r.guid), warnings },
    });
    for (const ref of copied) await this.audit(actor, newId, 'ok', `copied from ${source.id}`, ref);
    return { profile, warnings };
  }

  private requireProfile(vmId: string): VmProfile {
    const p = this.deps.profiles.get(vmId);
    if (!p) throw new DomainError('unknown-vm', `no VM profile ${vmId}`);
    return p;
  }

  /** One durable event per operation: an owner action on a secret is never lost from the log. */
  private async audit(
    actor: SecretActor,
    vmId: string,
    result: AuditEventInput['result'],
    action: string,
    ref: Pick<SecretRef, 'guid'> & Partial<SecretRef>,
    extra: Record<string, unknown> = {},
  ): Promise<void> {
    const name = ref.guid === LUKS_PASSPHRASE_GUID ? 'the disk passphrase' : `secret ${ref.guid}`;
    await this.deps.audit.appendDurable({
      type: 'secret',
      result,
      vmId,
      ...(actor.client ? { client: actor.client } : {}),
      message: `${name} of ${vmId} ${action}`,
      details: { action, guid: ref.guid, ...(ref.kind ? { kind: ref.kind } : {}), via: actor.via, ...extra },
    });
  }
}

/** True when `e` says the secret store cannot be used now (locked or absent keychain). */
export function isSecretStoreUnavailable(e: unknown): boolean {
  return isDomainError(e) && e.code === 'secret-store-unavailable';
}

/**
 * Raw bytes under the disk passphrase's GUID would silently replace the passphrase the guest unlocks its
 * disk with: refused on every transport (IPC, browser bridge, REST).
 */
function refuseRawDiskPassphrase(input: SecretValueInput): void {
  if (input.kind !== 'luks-passphrase' && input.guid.toLowerCase() === LUKS_PASSPHRASE_GUID) {
    throw new DomainError(
      'bad-arguments',
      `${LUKS_PASSPHRASE_GUID} is the disk (LUKS) passphrase's GUID: set it as a LUKS passphrase`,
    );
  }
}
