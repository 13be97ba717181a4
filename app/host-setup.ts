/**
 * What the owner pastes on the host for one VM profile (`hostSetup:get`): the libvirt domain XML fragment
 * (`<launchSecurity type='sev'>`, `<os>` with a stateless ROM loader and, for measured direct boot, the
 * kernel/initrd/cmdline) and the `sev-attest-host launch` command, with notes on what must match.
 * Pure TypeScript (no node imports): the renderer may build it too.
 */
import type { HostSetup } from './contract/ipc';
import { CPU_PRESETS } from './digest/cpu-presets';
import { usesMeasuredDirectBoot, type CpuSignature, type VmProfile } from './profile';
import { decodePolicy } from './sev/policy';

export interface HostSetupInput {
  profile: VmProfile;
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
