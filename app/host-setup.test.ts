import { SaxesParser } from 'saxes';
import { describe, expect, it } from 'vitest';
import { buildHostSetup, libvirtPolicyHex, shellQuote } from './host-setup';
import { VmProfileSchema, type VmProfile } from './profile';

const FW = 'a'.repeat(64);
const K = 'b'.repeat(64);
const I = 'c'.repeat(64);

function profile(extra: Partial<VmProfile> = {}): VmProfile {
  return VmProfileSchema.parse({
    id: '5b0ea3f2-7d47-4f8e-9d6b-0a4c2b1e9f10',
    name: 'web',
    scheme: 'amd-sev',
    policy: 0x0003,
    cpuCounts: [1],
    firmware: { kind: 'artifact', sha256: FW, size: 4096, name: 'OVMF.amdsev.fd' },
    ...extra,
  });
}

/** Parses the fragment inside a <domain> element with a strict XML parser; returns element name -> text/attrs. */
function parse(fragment: string): Map<string, { text: string; attrs: Record<string, string> }[]> {
  const out = new Map<string, { text: string; attrs: Record<string, string> }[]>();
  const stack: { name: string; attrs: Record<string, string>; text: string }[] = [];
  const p = new SaxesParser();
  let error: Error | undefined;
  p.on('error', (e) => (error ??= e));
  p.on('opentag', (t) =>
    stack.push({ name: t.name, attrs: t.attributes as Record<string, string>, text: '' }),
  );
  p.on('text', (t) => {
    const top = stack[stack.length - 1];
    if (top) top.text += t;
  });
  p.on('closetag', () => {
    const e = stack.pop()!;
    out.set(e.name, [...(out.get(e.name) ?? []), { text: e.text.trim(), attrs: e.attrs }]);
  });
  p.write(`<domain type='kvm'>${fragment}</domain>`).close();
  if (error) throw error;
  return out;
}

describe('host setup', () => {
  it('SEV with a firmware artifact: hex policy as libvirt reads it, stateless ROM loader, no kernelHashes', () => {
    const s = buildHostSetup({ profile: profile(), listenerUrl: 'http://127.0.0.1:8470' });
    const x = parse(s.domainXml);
    expect(x.get('policy')![0]!.text).toBe('0x0003');
    const ls = x.get('launchSecurity')![0]!;
    expect(ls.attrs).toEqual({ type: 'sev' });
    const loader = x.get('loader')![0]!;
    expect(loader.attrs).toEqual({ type: 'rom', stateless: 'yes' });
    expect(loader.text).toBe('/path/to/OVMF.amdsev.fd');
    expect(x.has('kernel')).toBe(false);
    expect(x.has('cbitpos')).toBe(false); // explained in a comment: the host tool fills them
    expect(s.domainXml).toContain('cbitpos');
    expect(x.get('vcpu')![0]!.text).toBe('1');
    expect(s.hostCommand).toBe(
      `sev-attest-host launch --domain ${s.vmId} --service http://127.0.0.1:8470 --vm-id ${s.vmId}`,
    );
    expect(s.notes.join('\n')).toContain(FW);
    expect(s.notes.some((n) => n.includes('UUID'))).toBe(false);
  });

  it("measured direct boot: kernelHashes='yes', kernel/initrd/cmdline, hashes in the notes", () => {
    const s = buildHostSetup({
      profile: profile({ kernelHash: K, initrdHash: I, cmdline: 'console=ttyS0 root=/dev/vda & quiet' }),
      listenerUrl: 'http://127.0.0.1:8470',
    });
    const x = parse(s.domainXml);
    expect(x.get('launchSecurity')![0]!.attrs).toEqual({ type: 'sev', kernelHashes: 'yes' });
    expect(x.get('cmdline')![0]!.text).toBe('console=ttyS0 root=/dev/vda & quiet');
    expect(x.get('kernel')![0]!.text).toBe('/path/to/vmlinuz');
    expect(x.get('initrd')![0]!.text).toBe('/path/to/initrd.img');
    const notes = s.notes.join('\n');
    expect(notes).toContain(K);
    expect(notes).toContain(I);
    expect(notes).toContain('AmdSev');
  });

  it('a command line known only by its hash becomes a placeholder with the hash to match', () => {
    const s = buildHostSetup({
      profile: profile({ kernelHash: K, cmdlineHash: I }),
      listenerUrl: 'http://127.0.0.1:8470',
    });
    expect(parse(s.domainXml).get('cmdline')![0]!.text).toBe('KERNEL_COMMAND_LINE');
    expect(s.notes.some((n) => n.includes('KERNEL_COMMAND_LINE') && n.includes(I))).toBe(true);
  });

  it('SEV-ES: policy 0x0007, vCPU count, a CPU model with the profile signature, host-support note', () => {
    const s = buildHostSetup({
      profile: profile({
        scheme: 'amd-sev-es',
        policy: 0x07,
        cpuCounts: [4, 2],
        cpuSignatures: [{ family: 25, model: 1, stepping: 1 }],
      }),
      listenerUrl: 'https://owner.example:8470',
      tlsFingerprint: 'ab'.repeat(32),
      hostTokenRequired: true,
      platform: { cbitpos: 51, reducedPhysBits: 1 },
    });
    const x = parse(s.domainXml);
    expect(x.get('policy')![0]!.text).toBe('0x0007');
    expect(x.get('vcpu')![0]!.text).toBe('4');
    expect(x.get('model')![0]!.text).toBe('EPYC-Milan');
    expect(x.get('cbitpos')![0]!.text).toBe('51');
    expect(x.get('reducedPhysBits')![0]!.text).toBe('1');
    expect(s.hostCommand).toContain(`--pin-sha256 ${'AB:'.repeat(31)}AB`);
    expect(s.hostCommand.startsWith("SEV_ATTEST_HOST_TOKEN='<host token")).toBe(true);
    const notes = s.notes.join('\n');
    expect(notes).toContain('maxESGuests');
    expect(notes).toContain('4, 2');
    expect(notes).toContain('family 25 model 1 stepping 1');
  });

  it('an unknown CPU signature gets a note instead of a model; debug policy is flagged; a non-UUID id needs no note', () => {
    const s = buildHostSetup({
      profile: profile({
        id: 'web-1',
        scheme: 'amd-sev-es',
        policy: 0x04,
        cpuSignatures: [{ family: 25, model: 160, stepping: 2 }],
        secrets: [{ guid: '736869e5-84f0-4973-92ec-06879ce3da0b', kind: 'luks-passphrase' }],
      }),
      listenerUrl: 'http://192.0.2.7:8470',
    });
    expect(parse(s.domainXml).has('cpu')).toBe(false);
    const notes = s.notes.join('\n');
    expect(notes).toContain('host-passthrough');
    expect(notes).toContain('NODBG off');
    expect(notes).not.toContain('UUID');
    expect(s.hostCommand).toContain('--vm-id web-1');
    expect(notes).toContain('unprotected');
    expect(notes).toContain('secret area');
  });

  it('precomputed digests: loader placeholder and a note; names with quotes and markup are escaped', () => {
    const s = buildHostSetup({
      profile: profile({ firmware: { kind: 'digests', launchDigests: [FW] } }),
      listenerUrl: 'http://127.0.0.1:8470',
      domainName: "it's <vm>",
    });
    expect(parse(s.domainXml).get('loader')![0]!.text).toBe('/path/to/OVMF.fd');
    expect(s.hostCommand).toContain(`--domain 'it'\\''s <vm>'`);
    expect(s.notes.join('\n')).toContain('precomputed');
  });

  it('helpers', () => {
    expect(libvirtPolicyHex(1)).toBe('0x0001');
    expect(libvirtPolicyHex(0x00010005)).toBe('0x10005');
    expect(shellQuote('a b')).toBe(`'a b'`);
    expect(shellQuote('http://x:1/y')).toBe('http://x:1/y');
  });
});

describe('host setup: reaching the listener', () => {
  const p: VmProfile = {
    id: 'web',
    name: 'Web',
    scheme: 'amd-sev',
    policy: 1,
    cpuCounts: [1],
    cpuSignatures: [],
    vmsaVariants: ['kvm-init2'],
    firmware: { kind: 'artifact', sha256: 'ab'.repeat(32), size: 1, name: 'OVMF.amdsev-trimmed.fd (demo)' },
    approval: 'manual',
    secrets: [],
  };
  it('uses the tunnel’s remote port when a tunnel is set', () => {
    const s = buildHostSetup({
      profile: p,
      listenerUrl: 'http://127.0.0.1:8470',
      tunnel: { remotePort: 9443, target: 'me@kvm' },
    });
    expect(s.hostCommand).toContain('--service http://127.0.0.1:9443');
    expect(s.notes.join('\n')).toMatch(/SSH reverse tunnel to me@kvm/);
    expect(s.notes.join('\n')).not.toMatch(/answers only on this machine/);
  });
  it('says a loopback-only listener cannot be reached by the host, and explains the firmware path', () => {
    const s = buildHostSetup({ profile: p, listenerUrl: 'http://127.0.0.1:8470' });
    expect(s.notes.join('\n')).toMatch(
      /answers only on this machine's loopback .*Start the SSH reverse tunnel/,
    );
    expect(s.domainXml).toContain('/path/to/OVMF.amdsev-trimmed.fd</loader>');
    expect(s.notes.join('\n')).toMatch(
      /copy the image you imported as "OVMF.amdsev-trimmed.fd \(demo\)" to the host/,
    );
    expect(s.notes.join('\n')).toMatch(/demo firmware .* boots nothing on a real host/);
  });
});
