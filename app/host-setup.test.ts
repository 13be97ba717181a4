import { readFileSync } from 'node:fs';
import { SaxesParser } from 'saxes';
import { describe, expect, it } from 'vitest';
import { buildHostSetup, libvirtPolicyHex, shellQuote } from './host-setup';
import { LUKS_PASSPHRASE_GUID, VmProfileSchema, type VmProfile } from './profile';
import { fromBase64, fromHex, toHex } from './sev/bytes';
import { createIdBlock, loadP384PrivateKeyPem, verifyIdBlock } from './snp/id-block';

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

describe('host setup for an SEV-SNP profile', () => {
  const idKey = loadP384PrivateKeyPem(
    readFileSync('test/fixtures/snp/measure/id_key_test.pem'),
    'test ID key',
  );
  const authorKey = loadP384PrivateKeyPem(
    readFileSync('test/fixtures/snp/measure/author_key_test.pem'),
    'test author key',
  );
  const M1 = '1'.repeat(96);
  const M2 = '2'.repeat(96);
  const snpProfile = (extra: Partial<VmProfile> = {}) =>
    profile({
      scheme: 'amd-sev-snp',
      policy: 0x30000,
      cpuCounts: [2, 4],
      cpuSignatures: [{ family: 25, model: 1, stepping: 1 }],
      kernelHash: K,
      initrdHash: I,
      cmdline: 'console=ttyS0 root=/dev/mapper/root',
      snp: {
        vmmType: 'qemu',
        guestFeatures: 1,
        trustedIdKeyDigests: [],
        trustedAuthorKeyDigests: [],
        hostData: '5a'.repeat(32),
        vmpl: 0,
        minimumReportVersion: 3,
      },
      secrets: [{ guid: LUKS_PASSPHRASE_GUID, kind: 'luks-passphrase', resource: 'default/luks/root' }],
      ...extra,
    });
  const rows = [
    { index: 0, measurement: M1, cpus: 2, cpuSignature: { family: 25, model: 1, stepping: 1 } },
    { index: 1, measurement: M2, cpus: 4, cpuSignature: { family: 25, model: 1, stepping: 1 } },
  ];
  const signed = (withAuthor: boolean) => {
    const s = createIdBlock(
      { launchDigest: fromHex(M2), policy: 0x30000n },
      idKey,
      withAuthor ? authorKey : undefined,
    );
    return {
      row: rows[1]!,
      idBlockBase64: s.idBlockBase64,
      idAuthBase64: s.idAuthBase64,
      idKeyDigest: toHex(s.idKeyDigest),
      ...(s.authorKeyDigest ? { authorKeyDigest: toHex(s.authorKeyDigest) } : {}),
      familyId: '0'.repeat(32),
      imageId: '0'.repeat(32),
      guestSvn: 0,
    };
  };

  it("the fragment parses and has <launchSecurity type='sev-snp'> with policy, ID block, ID auth and host data", () => {
    const block = signed(true);
    const s = buildHostSetup({
      profile: snpProfile(),
      listenerUrl: 'https://owner.example:8470',
      tlsFingerprint: 'ab'.repeat(32),
      snp: { rows, idKeyDigest: block.idKeyDigest, idBlock: block },
    });
    const x = parse(s.domainXml);
    const ls = x.get('launchSecurity')![0]!;
    expect(ls.attrs).toEqual({ type: 'sev-snp', kernelHashes: 'yes', authorKey: 'yes' });
    expect(x.get('policy')![0]!.text).toBe('0x00030000');
    // The element order of libvirt's own test (tests/qemuxmlconfdata/launch-security-sev-snp.xml).
    const order = ['policy', 'idBlock', 'idAuth', 'hostData'].map((n) => s.domainXml.indexOf(`<${n}>`));
    expect([...order].sort((a, b) => a - b)).toEqual(order);
    const idBlock = fromBase64(x.get('idBlock')![0]!.text);
    const idAuth = fromBase64(x.get('idAuth')![0]!.text);
    expect(idBlock).toHaveLength(96);
    expect(idAuth).toHaveLength(4096);
    const v = verifyIdBlock(idBlock, idAuth, {
      idKeyDigest: fromHex(block.idKeyDigest),
      authorKeyDigest: fromHex(block.authorKeyDigest!),
    });
    expect(toHex(v.block.launchDigest)).toBe(M2);
    expect(v.block.policy).toBe(0x30000n);
    const hostData = fromBase64(x.get('hostData')![0]!.text);
    expect(toHex(hostData)).toBe('5a'.repeat(32));
    // The signed row decides the vCPU count and model.
    expect(x.get('vcpu')![0]!.text).toBe('4');
    expect(x.get('model')![0]!.text).toBe('EPYC-Milan');
    expect(x.get('cmdline')![0]!.text).toBe('console=ttyS0 root=/dev/mapper/root');
    expect(s.hostCommand).toBe(`virsh start ${s.vmId}`);
    expect(s.snp!.files.map((f) => f.name)).toEqual([
      `${s.vmId}.id-block.b64`,
      `${s.vmId}.id-auth.b64`,
      `${s.vmId}.host-data.b64`,
    ]);
    expect(s.snp!.files[0]!.text.trim()).toBe(block.idBlockBase64);
    const notes = s.notes.join('\n');
    expect(notes).toContain('https://owner.example:8470/kbs/v0');
    expect(notes).toContain('default/luks/root');
    expect(notes).toMatch(/Pin the listener's certificate/);
  });

  it('without an author key: no authorKey attribute; without a direct-boot kernel: no kernelHashes', () => {
    const s = buildHostSetup({
      profile: snpProfile({ kernelHash: undefined, initrdHash: undefined, cmdline: undefined }),
      listenerUrl: 'http://127.0.0.1:8470',
      snp: { rows, idBlock: signed(false) },
    });
    const x = parse(s.domainXml);
    expect(x.get('launchSecurity')![0]!.attrs).toEqual({ type: 'sev-snp' });
    expect(x.has('kernel')).toBe(false);
  });

  it('several rows and none signed: no ID block, the reason in a comment and a note; any host data said', () => {
    const s = buildHostSetup({
      profile: snpProfile({
        snp: { ...snpProfile().snp!, hostData: undefined },
      }),
      listenerUrl: 'http://127.0.0.1:8470',
      snp: { rows, idBlockMissing: 'the profile has 2 measurements: choose the row' },
    });
    const x = parse(s.domainXml);
    expect(x.has('idBlock')).toBe(false);
    expect(x.has('hostData')).toBe(false);
    expect(s.domainXml).toContain(
      '<!-- no idBlock/idAuth: the profile has 2 measurements: choose the row -->',
    );
    expect(s.notes.join('\n')).toMatch(/accepts any host data/);
    expect(s.snp!.files).toEqual([]);
  });

  it('XML-special characters in the command line stay text', () => {
    const s = buildHostSetup({
      profile: snpProfile({ cmdline: `a=<b> c=&d e='f'` }),
      listenerUrl: 'http://127.0.0.1:8470',
    });
    expect(parse(s.domainXml).get('cmdline')![0]!.text).toBe(`a=<b> c=&d e='f'`);
  });
});
