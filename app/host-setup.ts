/**
 * What the owner pastes on the host for one VM profile (`hostSetup:get`): the libvirt domain XML fragment
 * (`<launchSecurity type='sev'>`, `<os>` with a stateless ROM loader and, for measured direct boot, the
 * kernel/initrd/cmdline) and the `sev-attest-host launch` command, with notes on what must match.
 * For an SEV-SNP profile: `<launchSecurity type='sev-snp'>` with the policy, host data and, when the owner
 * signed one, the ID block and its auth (the signing is server/services/snp-id-keys.ts; docs/snp-guest.md).
 * Pure TypeScript (no node imports): the renderer may build it too.
 */
import { CPU_PRESETS } from './digest/cpu-presets';
import { usesMeasuredDirectBoot, type CpuSignature, type VmProfile } from './profile';
import { decodePolicy } from './sev/policy';

/** A file the host needs besides the fragment (base64 text, as libvirt and QEMU take it). */
export interface HostSetupFile {
  name: string;
  text: string;
  /** What it is, for the UI. */
  description: string;
}

/** One expected SNP measurement an ID block can sign, with the inputs it was computed for. */
export interface SnpMeasurementRow {
  /** Position in the profile's list of expected measurements. */
  index: number;
  /** SHA-384, 96 hex. */
  measurement: string;
  cpus?: number;
  cpuSignature?: CpuSignature;
}

/** A signed ID block for one row (docs/protocol.md §14). */
export interface SnpIdBlockMaterial {
  row: SnpMeasurementRow;
  idBlockBase64: string;
  idAuthBase64: string;
  /** SHA-384 of the ID public key (the report's ID_KEY_DIGEST), hex. */
  idKeyDigest: string;
  /** Present when the owner's author key signed the ID key (libvirt `authorKey='yes'`). */
  authorKeyDigest?: string;
  /** 16 bytes each, hex. */
  familyId: string;
  imageId: string;
  guestSvn: number;
}

/** What the SNP host setup knows besides the profile: the rows, the VM's ID key, a signed ID block. */
export interface SnpHostSetupInput {
  rows: SnpMeasurementRow[];
  /** The digest of this VM's ID key in the keychain, when one was created. */
  idKeyDigest?: string;
  /** The digest of the owner's author key, when one was created. */
  authorKeyDigest?: string;
  idBlock?: SnpIdBlockMaterial;
  /** Why no ID block is in the fragment (several rows and none chosen, no key yet...). */
  idBlockMissing?: string;
}

/** What `hostSetup:get` gives an SEV-SNP profile besides the fragment. */
export type SnpHostSetup = SnpHostSetupInput & { files: HostSetupFile[] };

/** `hostSetup:get`: what to paste on the host for one profile. */
export interface HostSetup {
  vmId: string;
  /** The libvirt domain XML fragment (`<launchSecurity>`, `<loader>`, `<kernel>`...). */
  domainXml: string;
  /** The host-side command (sev-attest-host / virsh) to run, ready to copy. */
  hostCommand: string;
  notes: string[];
  /** SEV-SNP profiles only. */
  snp?: SnpHostSetup;
}

/** What the owner chooses for an SNP host setup's ID block. */
export interface HostSetupOptions {
  /** The measurement row the ID block signs (required when the profile has several). */
  row?: number;
  /** 16 bytes in hex (32 digits); default zeros. */
  familyId?: string;
  imageId?: string;
  guestSvn?: number;
  /** Also sign the ID key with the owner's author key (created with the ID key on request). */
  authorKey?: boolean;
}

/** `hostSetup:snpKeys`: the keys the VM's ID blocks are signed with (digests only; the keys stay in the keychain). */
export interface SnpKeysResult {
  vmId: string;
  idKeyDigest: string;
  idKeyCreated: boolean;
  authorKeyDigest?: string;
  authorKeyCreated?: boolean;
  /** Where the private keys live (keychain account names). */
  accounts: { idKey: string; authorKey?: string };
}

export interface HostSetupInput {
  profile: VmProfile;
  /** SEV-SNP profiles: the rows and the signed ID block (server side). */
  snp?: SnpHostSetupInput;
  /** The listener URL hosts call (ListenerStatus.url). */
  listenerUrl: string;
  /** SHA-256 fingerprint of the listener's TLS certificate, when TLS is on. */
  tlsFingerprint?: string;
  /** True when the listener requires a host token. */
  hostTokenRequired?: boolean;
  /** `cbitpos` / `reduced-phys-bits` of the host (`sev-attest-host info`), when the owner knows them. */
  platform?: { cbitpos: number; reducedPhysBits: number };
  /** The libvirt domain name (default: the VM id). */
  domainName?: string;
  /**
   * The SSH reverse tunnel, when one is set: the host reaches the listener at 127.0.0.1:remotePort on
   * its own side, so the command uses that address.
   */
  tunnel?: { remotePort: number; target?: string };
}

/** True for a listener URL on loopback (only this machine can call it). */
export function isLoopbackUrl(url: string): boolean {
  return /^https?:\/\/(127\.\d+\.\d+\.\d+|\[::1\]|localhost)(:|\/|$)/.test(url);
}

/** A file name fit for a path: the display name without a " (demo)"-style suffix or path characters. */
function pathName(name: string): string {
  const base = name.replace(/\s*\([^)]*\)\s*$/, '').replace(/[\s/\\]+/g, '_');
  return base === '' ? 'OVMF.fd' : base;
}

/** libvirt reads `<policy>` as hexadecimal; four digits at least, like its own examples (0x0003). */
export function libvirtPolicyHex(policy: number): string {
  return `0x${(policy >>> 0).toString(16).padStart(4, '0')}`;
}

function xmlText(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** A comment body cannot contain "--". */
function xmlComment(s: string): string {
  return `<!-- ${s.replace(/--/g, '- -')} -->`;
}

/** Single-quotes a word for a POSIX shell when it needs it. */
export function shellQuote(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** A fingerprint as colon-separated upper-case pairs (what `serve --tls` prints; the host accepts both). */
function colonFingerprint(fp: string): string {
  const hex = fp.replace(/[^0-9a-fA-F]/g, '').toUpperCase();
  return hex.replace(/(..)(?!$)/g, '$1:');
}

/** The libvirt CPU model whose signature is `sig`, if one of the presets has it. */
function cpuModelFor(sig: CpuSignature): string | undefined {
  // 'EPYC-v4' is a QEMU version alias, not a libvirt model name: prefer the plain names.
  return CPU_PRESETS.find(
    (p) =>
      p.name !== 'EPYC-v4' &&
      p.confidence !== 'low' &&
      p.family === sig.family &&
      p.model === sig.model &&
      p.stepping === sig.stepping,
  )?.name;
}

const sigText = (s: CpuSignature) => `family ${s.family} model ${s.model} stepping ${s.stepping}`;

/** Builds the domain XML fragment, the host command and the notes for one profile. */
export function buildHostSetup(input: HostSetupInput): HostSetup {
  if (input.profile.scheme === 'amd-sev-snp') return buildSnpHostSetup(input);
  const p = input.profile;
  const policy = decodePolicy(p.policy);
  const sevEs = policy.es;
  const measured = usesMeasuredDirectBoot(p);
  const domain = input.domainName ?? p.id;
  const notes: string[] = [];
  const xml: string[] = [];
  const i1 = '  ';

  xml.push(
    xmlComment(
      `SEV Attest: VM '${p.id}' (${sevEs ? 'SEV-ES' : 'SEV'}, policy ${libvirtPolicyHex(p.policy)}). Merge into the domain (virsh edit ${domain}).`,
    ),
  );
  const cpus = p.cpuCounts[0]!;
  xml.push(`<vcpu placement='static'>${cpus}</vcpu>`);
  if (p.cpuCounts.length > 1) {
    notes.push(
      `The profile admits ${p.cpuCounts.join(', ')} vCPUs; the fragment uses ${cpus}. Any of them passes validation${sevEs ? ' (SEV-ES measures one VMSA per vCPU)' : ''}.`,
    );
  }
  if (sevEs) {
    const sig = p.cpuSignatures[0];
    const model = sig ? cpuModelFor(sig) : undefined;
    if (sig && model) {
      xml.push(
        `<cpu mode='custom' match='exact' check='full'>`,
        `${i1}<model fallback='forbid'>${model}</model>`,
        `</cpu>`,
      );
      notes.push(
        `SEV-ES measures the vCPU signature: the guest CPU model ${model} reports ${sigText(sig)}, as the profile expects.`,
      );
    } else if (sig) {
      notes.push(
        `SEV-ES measures the vCPU signature: the guest CPU must report ${sigText(sig)} (for example <cpu mode='host-passthrough'/> on a host whose \`virsh capabilities\` shows that signature).`,
      );
    }
  }

  xml.push(`<os>`);
  xml.push(`${i1}<type arch='x86_64' machine='q35'>hvm</type>`);
  const shownName = p.firmware.kind === 'artifact' ? (p.firmware.name ?? 'OVMF.fd') : 'OVMF.fd';
  const fwName = pathName(shownName);
  xml.push(`${i1}<loader type='rom' stateless='yes'>/path/to/${xmlText(fwName)}</loader>`);
  if (p.firmware.kind === 'artifact') {
    notes.push(
      `Firmware: copy the image you imported as "${shownName}" to the host, and write its path on the host in <loader> instead of /path/to/${fwName}. \`sha256sum\` of that file must print ${p.firmware.sha256}: the launch digest is computed from exactly those bytes.`,
    );
    if (/\(demo\)\s*$/.test(shownName)) {
      notes.push(
        'This is the demo firmware (a trimmed test image from sevctl): it boots nothing on a real host. For a real VM, import the AmdSev OVMF build your host uses and make a profile of your own.',
      );
    }
  } else {
    notes.push(
      `The profile holds precomputed launch digests: replace /path/to/OVMF.fd with the firmware those digests were computed for.`,
    );
  }
  if (measured) {
    xml.push(`${i1}<kernel>/path/to/vmlinuz</kernel>`);
    xml.push(`${i1}<initrd>/path/to/initrd.img</initrd>`);
    if (p.cmdline !== undefined) xml.push(`${i1}<cmdline>${xmlText(p.cmdline)}</cmdline>`);
    else xml.push(`${i1}<cmdline>KERNEL_COMMAND_LINE</cmdline>`);
    notes.push(
      `Measured direct boot: the kernel file's SHA-256 must be ${p.kernelHash}${p.initrdHash ? `, the initrd's ${p.initrdHash}` : ' and no initrd is measured (remove <initrd>, or its hash is of an empty file)'}.`,
    );
    if (p.cmdline === undefined && p.cmdlineHash !== undefined) {
      notes.push(
        `Replace KERNEL_COMMAND_LINE with the exact command line whose SHA-256 (UTF-8 plus a trailing NUL, as QEMU hashes it) is ${p.cmdlineHash}.`,
      );
    } else if (p.cmdline === undefined) {
      xml[xml.length - 1] = `${i1}<cmdline></cmdline>`;
    }
  }
  xml.push(`</os>`);

  xml.push(`<launchSecurity type='sev'${measured ? ` kernelHashes='yes'` : ''}>`);
  if (input.platform) {
    xml.push(`${i1}<cbitpos>${input.platform.cbitpos}</cbitpos>`);
    xml.push(`${i1}<reducedPhysBits>${input.platform.reducedPhysBits}</reducedPhysBits>`);
  } else {
    xml.push(
      `${i1}${xmlComment("<cbitpos>/<reducedPhysBits>: sev-attest-host fills them from 'virsh nodesevinfo' when absent.")}`,
      `${i1}${xmlComment("With plain virsh, add them from 'sev-attest-host info', e.g. <cbitpos>47</cbitpos> <reducedPhysBits>1</reducedPhysBits>")}`,
    );
  }
  xml.push(`${i1}<policy>${libvirtPolicyHex(p.policy)}</policy>`);
  xml.push(`${i1}${xmlComment('dhCert and session: written by sev-attest-host for each launch')}`);
  xml.push(`</launchSecurity>`);
  const domainXml = xml.join('\n') + '\n';

  const tls = input.listenerUrl.startsWith('https:');
  // Through a tunnel the host calls its own loopback port, which ssh forwards to this listener.
  const serviceUrl = input.tunnel
    ? `${tls ? 'https' : 'http'}://127.0.0.1:${input.tunnel.remotePort}`
    : input.listenerUrl;
  if (input.tunnel) {
    notes.push(
      `The host reaches this listener through the SSH reverse tunnel${input.tunnel.target ? ` to ${input.tunnel.target}` : ''}: on the host it answers at 127.0.0.1:${input.tunnel.remotePort}, the address in the command.`,
    );
  } else if (isLoopbackUrl(input.listenerUrl)) {
    notes.push(
      `The listener answers only on this machine's loopback (${input.listenerUrl}): a KVM host cannot reach it. Start the SSH reverse tunnel on the Listener screen (the command then uses the tunnel's port), or bind the listener to an address the host can reach. Running the host tools on this same machine works as it is.`,
    );
  }
  const args = ['sev-attest-host', 'launch', '--domain', domain, '--service', serviceUrl];
  args.push('--vm-id', p.id);
  if (input.tlsFingerprint) args.push('--pin-sha256', colonFingerprint(input.tlsFingerprint));
  let hostCommand = args.map(shellQuote).join(' ');
  if (input.hostTokenRequired) {
    hostCommand = `SEV_ATTEST_HOST_TOKEN='<host token from the Listener screen>' ${hostCommand}`;
    notes.push(
      'The listener requires a host token: the command reads it from SEV_ATTEST_HOST_TOKEN (kept out of `ps`); --token works too.',
    );
  }

  if (tls && !input.tlsFingerprint) {
    notes.push(
      'The listener URL is https but no certificate fingerprint is known: pin it with --pin-sha256.',
    );
  }
  if (!tls && !/^http:\/\/(127\.0\.0\.1|\[::1\]|localhost)[:/]/.test(input.listenerUrl)) {
    notes.push(
      'The listener is plain http on a network address: the session and secret travel unprotected by TLS (they are encrypted for the guest, but turn TLS on or use the SSH tunnel).',
    );
  }
  if (p.firmware.kind === 'artifact' && measured) {
    notes.push(
      "kernelHashes='yes' needs an AmdSev OVMF build with a hashes-table area (Artifacts shows whether the firmware supports measured direct boot).",
    );
  }
  if (sevEs) {
    notes.push(
      'SEV-ES needs host support: `virsh domcapabilities` must list <sev> with maxESGuests above 0 (kernel parameter kvm_amd.sev_es=1).',
    );
  }
  if (!policy.noDebug) {
    notes.push(
      'The policy allows debugging (NODBG off): the host could read guest memory through the debug API.',
    );
  }
  if (p.secrets.length > 0) {
    notes.push(
      "Secrets are injected into the firmware's SEV secret area: a firmware without one (generic OVMF builds such as Debian's OVMF.fd) cannot receive them.",
    );
  }
  notes.push(
    "libvirt's SEV guide: virtio devices need <driver iommu='on'/>, and guest memory is pinned (<memoryBacking><locked/></memoryBacking> or a memtune hard_limit).",
  );
  return { vmId: p.id, domainXml, hostCommand, notes };
}

// ------------------------------------------------------------------------------------------------
// SEV-SNP

/** libvirt's SNP `<policy>`: a 64-bit hex value; eight digits like its own tests (0x00030000). */
export function libvirtSnpPolicyHex(policy: number): string {
  return `0x${(policy >>> 0).toString(16).padStart(8, '0')}`;
}

/** Standard base64 of hex bytes (no Buffer: the renderer builds this too). */
export function hexToBase64(hex: string): string {
  let bin = '';
  for (let i = 0; i < hex.length; i += 2) bin += String.fromCharCode(parseInt(hex.slice(i, i + 2), 16));
  return btoa(bin);
}

/** The path under which a guest fetches resources: the listener's Trustee KBS routes (docs/protocol.md §15). */
export function kbsBaseUrl(listenerUrl: string): string {
  return `${listenerUrl.replace(/\/+$/, '')}/kbs/v0`;
}

function describeRow(r: SnpMeasurementRow): string {
  const parts = [`row ${r.index}`];
  if (r.cpus !== undefined) parts.push(`${r.cpus} vCPU${r.cpus === 1 ? '' : 's'}`);
  if (r.cpuSignature) parts.push(cpuModelFor(r.cpuSignature) ?? sigText(r.cpuSignature));
  return parts.join(', ');
}

/**
 * The SEV-SNP host setup: the guest attests itself to the listener's KBS routes, so the host only launches
 * it as the profile expects. libvirt's `<launchSecurity type='sev-snp'>` (libvirt 10.5+, QEMU 9.1+) carries
 * the policy, the host data and the owner's signed ID block; the firmware refuses to launch an image whose
 * measurement differs from the ID block's.
 */
function buildSnpHostSetup(input: HostSetupInput): HostSetup {
  const p = input.profile;
  const snp = p.snp!;
  const info: SnpHostSetupInput = input.snp ?? { rows: [] };
  const measured = usesMeasuredDirectBoot(p);
  const domain = input.domainName ?? p.id;
  const notes: string[] = [];
  const xml: string[] = [];
  const files: HostSetupFile[] = [];
  const i1 = '  ';
  const block = info.idBlock;
  // The row the fragment describes: the signed one, else the only one, else the first.
  const row = block?.row ?? (info.rows.length === 1 ? info.rows[0] : undefined);

  xml.push(
    xmlComment(
      `SEV Attest: VM '${p.id}' (SEV-SNP, policy ${libvirtSnpPolicyHex(p.policy)}). Merge into the domain (virsh edit ${domain}).`,
    ),
  );
  const cpus = row?.cpus ?? p.cpuCounts[0]!;
  xml.push(`<vcpu placement='static'>${cpus}</vcpu>`);
  const sig = row?.cpuSignature ?? p.cpuSignatures[0];
  if (snp.vmmType === 'qemu' && sig) {
    const model = cpuModelFor(sig);
    if (model) {
      xml.push(
        `<cpu mode='custom' match='exact' check='full'>`,
        `${i1}<model fallback='forbid'>${model}</model>`,
        `</cpu>`,
      );
      notes.push(
        `SEV-SNP measures the vCPU signature: the guest CPU model ${model} reports ${sigText(sig)}, as the ${row ? 'row' : 'profile'} expects.`,
      );
    } else {
      notes.push(`SEV-SNP measures the vCPU signature: the guest CPU must report ${sigText(sig)}.`);
    }
  }
  if (!row && p.cpuCounts.length > 1) {
    notes.push(
      `The profile admits ${p.cpuCounts.join(', ')} vCPUs; the fragment uses ${cpus}. SEV-SNP measures one VMSA per vCPU, so each count has its own measurement.`,
    );
  }

  xml.push(`<os>`);
  xml.push(`${i1}<type arch='x86_64' machine='q35'>hvm</type>`);
  const shownName = p.firmware.kind === 'artifact' ? (p.firmware.name ?? 'OVMF.fd') : 'OVMF.fd';
  const fwName = pathName(shownName);
  xml.push(`${i1}<loader type='rom' stateless='yes'>/path/to/${xmlText(fwName)}</loader>`);
  if (p.firmware.kind === 'artifact') {
    notes.push(
      `Firmware: copy the image you imported as "${shownName}" to the host and write its path in <loader>. \`sha256sum\` of that file must print ${p.firmware.sha256}: the measurement is computed from exactly those bytes.`,
    );
  } else {
    notes.push(
      'The profile holds precomputed measurements: replace /path/to/OVMF.fd with the firmware they were computed for.',
    );
  }
  if (measured) {
    xml.push(`${i1}<kernel>/path/to/vmlinuz</kernel>`);
    xml.push(`${i1}<initrd>/path/to/initrd.img</initrd>`);
    xml.push(
      `${i1}<cmdline>${p.cmdline !== undefined ? xmlText(p.cmdline) : 'KERNEL_COMMAND_LINE'}</cmdline>`,
    );
    notes.push(
      `Measured direct boot: the kernel file's SHA-256 must be ${p.kernelHash}${p.initrdHash ? `, the initrd's ${p.initrdHash}` : ''}.`,
    );
    if (p.cmdline === undefined) {
      notes.push(
        `Replace KERNEL_COMMAND_LINE with the exact command line whose SHA-256 (UTF-8 plus a trailing NUL) is ${p.cmdlineHash ?? "the profile's"}.`,
      );
    }
  }
  xml.push(`</os>`);

  const attrs = [`type='sev-snp'`];
  if (measured) attrs.push(`kernelHashes='yes'`);
  if (block?.authorKeyDigest) attrs.push(`authorKey='yes'`);
  xml.push(`<launchSecurity ${attrs.join(' ')}>`);
  if (input.platform) {
    xml.push(`${i1}<cbitpos>${input.platform.cbitpos}</cbitpos>`);
    xml.push(`${i1}<reducedPhysBits>${input.platform.reducedPhysBits}</reducedPhysBits>`);
  } else {
    xml.push(
      `${i1}${xmlComment("<cbitpos>/<reducedPhysBits>: libvirt fills them from the host's capabilities when absent.")}`,
    );
  }
  xml.push(`${i1}<policy>${libvirtSnpPolicyHex(p.policy)}</policy>`);
  if (block) {
    xml.push(`${i1}<idBlock>${block.idBlockBase64}</idBlock>`);
    xml.push(`${i1}<idAuth>${block.idAuthBase64}</idAuth>`);
    files.push(
      {
        name: `${p.id}.id-block.b64`,
        text: block.idBlockBase64 + '\n',
        description: `ID block (96 bytes, base64): ${describeRow(block.row)}, measurement ${block.row.measurement}`,
      },
      {
        name: `${p.id}.id-auth.b64`,
        text: block.idAuthBase64 + '\n',
        description: `ID authentication (4096 bytes, base64): signed by the ID key ${block.idKeyDigest}${block.authorKeyDigest ? ` and the author key ${block.authorKeyDigest}` : ''}`,
      },
    );
    notes.push(
      `The ID block signs ${describeRow(block.row)} (measurement ${block.row.measurement}) with this VM's ID key (digest ${block.idKeyDigest}): the firmware refuses to launch any other image, vCPU count or policy with it.`,
    );
    if (block.authorKeyDigest) {
      notes.push(
        `authorKey='yes': the owner's author key (digest ${block.authorKeyDigest}) signed the ID key; reports then carry both digests.`,
      );
    }
  } else {
    xml.push(`${i1}${xmlComment(`no idBlock/idAuth: ${info.idBlockMissing ?? 'no ID block signed'}`)}`);
    if (info.idBlockMissing) notes.push(`No ID block: ${info.idBlockMissing}.`);
  }
  if (snp.hostData !== undefined) {
    const hostData = hexToBase64(snp.hostData);
    xml.push(`${i1}<hostData>${hostData}</hostData>`);
    files.push({
      name: `${p.id}.host-data.b64`,
      text: hostData + '\n',
      description: `host data (32 bytes, base64) = ${snp.hostData}`,
    });
    notes.push(
      `<hostData> is what tells this VM apart from other SNP profiles with the same image: the report must carry exactly ${snp.hostData}.`,
    );
  } else {
    notes.push(
      'The profile accepts any host data. Give it one (32 bytes) when another SNP profile runs the same image: a report matching two profiles is refused as ambiguous.',
    );
  }
  xml.push(`</launchSecurity>`);
  const domainXml = xml.join('\n') + '\n';

  const tls = input.listenerUrl.startsWith('https:');
  const serviceUrl = input.tunnel
    ? `${tls ? 'https' : 'http'}://127.0.0.1:${input.tunnel.remotePort}`
    : input.listenerUrl;
  notes.push(
    `The guest itself fetches its disk key: its initrd talks to ${kbsBaseUrl(serviceUrl)} (Trustee KBS protocol; docs/snp-guest.md)${p.secrets.length ? `, resource${p.secrets.length > 1 ? 's' : ''} ${p.secrets.map((x) => x.resource).join(', ')}` : ' (the profile has no secret yet: add one with its resource path)'}. The host sees only the encrypted reply.`,
  );
  if (input.tunnel) {
    notes.push(
      `Through the SSH reverse tunnel, the host's loopback port ${input.tunnel.remotePort} reaches this listener; the guest reaches it only if the host forwards that port into the guest network.`,
    );
  } else if (isLoopbackUrl(input.listenerUrl)) {
    notes.push(
      `The listener answers only on this machine's loopback (${input.listenerUrl}): a guest on another machine cannot reach it. Bind it to an address the guest can reach, or use the SSH tunnel.`,
    );
  }
  if (tls && input.tlsFingerprint) {
    notes.push(
      `Pin the listener's certificate in the guest (SHA-256 ${colonFingerprint(input.tlsFingerprint)}): give the guest the certificate file (Listener screen), as docs/snp-guest.md shows.`,
    );
  } else if (!tls) {
    notes.push(
      "The listener is plain http: the guest's attestation travels in the clear (the key itself is encrypted to the guest); turn TLS on for real guests.",
    );
  }
  notes.push(
    "libvirt 10.5+ and QEMU 9.1+ know <launchSecurity type='sev-snp'>; `virsh domcapabilities` must list <sev-snp supported='yes'/>.",
  );
  const hostCommand = `virsh start ${shellQuote(domain)}`;
  return {
    vmId: p.id,
    domainXml,
    hostCommand,
    notes,
    snp: { ...info, files },
  };
}
