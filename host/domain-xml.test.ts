import { describe, expect, it } from 'vitest';
import {
  DomainXmlError,
  domainXmlText,
  parseDomainXml,
  policyHexForLibvirt,
  setSevLaunchSecurity,
} from './domain-xml';

const DH = 'A'.repeat(2780) + '==';
const SESSION = 'B'.repeat(172);

/** A realistic domain: comments, odd attribute order and quotes, entities, CDATA, many devices, non-ASCII. */
const REALISTIC = `<?xml version="1.0" encoding="UTF-8"?>
<!--
WARNING: THIS IS AN AUTO-GENERATED FILE. CHANGES TO IT ARE LIKELY TO BE
OVERWRITTEN AND LOST. Changes to this xml configuration should be made using:
  virsh edit sev-guest
-->
<domain xmlns:qemu="http://libvirt.org/schemas/domain/qemu/1.0" type='kvm'>
  <name>sev-guest</name>
  <uuid>0b7a8f3e-4c1d-4e2a-9f60-1d2e3f4a5b6c</uuid>
  <title>Ged&#xe4;chtnis &amp; "co" — 🐧 test</title>
  <description><![CDATA[Owner: <ops@example.org> & friends]]></description>
  <metadata>
    <libosinfo:libosinfo xmlns:libosinfo="http://libosinfo.org/xmlns/libvirt/domain/1.0">
      <libosinfo:os id="http://debian.org/debian/12"/>
    </libosinfo:libosinfo>
  </metadata>
  <memory unit='KiB'>4194304</memory>
  <currentMemory unit="KiB">4194304</currentMemory>
  <memoryBacking>
    <locked/>
  </memoryBacking>
  <vcpu placement='static' current="2">4</vcpu>
  <os firmware="efi">
    <type machine='pc-q35-7.2' arch="x86_64">hvm</type>
    <loader stateless='yes' type="rom" readonly='yes'>/usr/share/OVMF/OVMF.amdsev.fd</loader>
    <kernel>/var/lib/libvirt/boot/vmlinuz</kernel>
    <initrd>/var/lib/libvirt/boot/initrd.img</initrd>
    <cmdline>console=ttyS0 root=/dev/mapper/root rd.luks.name=x&amp;y quiet</cmdline>
  </os>
  <features>
    <acpi/>
    <apic />
  </features>
  <cpu mode='host-passthrough' check="none" migratable='on'/>
  <clock offset='utc'>
    <timer name='rtc' tickpolicy='catchup'/>
  </clock>
	<!-- a tab-indented comment, and CRLF below -->
  <on_poweroff>destroy</on_poweroff>\r
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' iommu='on'/>
      <source file='/var/lib/libvirt/images/sev-guest.qcow2' index="1"/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <interface type='network'>
      <mac address='52:54:00:aa:bb:cc'/>
      <source network='default'/>
      <model type='virtio'/>
      <driver iommu='on'/>
    </interface>
    <serial type='pty'><target port='0'/></serial>
    <graphics type='vnc' port='-1' autoport='yes' passwd='s&lt;e&apos;cret'/>
    <memballoon model='none'/>
  </devices>
  <qemu:commandline>
    <qemu:arg value='-trace'/>
  </qemu:commandline>
</domain>
`;

const LS_BLOCK = `  <launchSecurity kernelHashes='yes' type='sev'>
    <cbitpos>47</cbitpos>
    <reducedPhysBits>1</reducedPhysBits>
    <policy>0x0001</policy>
    <dhCert>old</dhCert>
    <session>old</session>
  </launchSecurity>
`;

const WITH_LS = REALISTIC.replace('  <qemu:commandline>', LS_BLOCK + '  <qemu:commandline>');

const enc = (s: string) => new TextEncoder().encode(s);

/** Every byte of `before` except the span [from, to) appears unchanged around the edit in `after`. */
function expectOnlySpanChanged(before: string, after: string, from: number, to: number): string {
  const a = enc(before);
  const b = enc(after);
  const pre = enc(before.slice(0, from)).length;
  const post = a.length - enc(before.slice(0, to)).length;
  expect(Buffer.from(b.subarray(0, pre)).equals(Buffer.from(a.subarray(0, pre)))).toBe(true);
  expect(Buffer.from(b.subarray(b.length - post)).equals(Buffer.from(a.subarray(a.length - post)))).toBe(
    true,
  );
  return new TextDecoder().decode(b.subarray(pre, b.length - post));
}

describe('parseDomainXml', () => {
  it('reads name, vCPUs (current), loader, direct-boot files (entities decoded), launchSecurity', () => {
    const info = parseDomainXml(WITH_LS);
    expect(info.name).toBe('sev-guest');
    expect(info.type).toBe('kvm');
    expect(info.vcpus).toBe(2);
    expect(info.loader).toEqual({
      path: '/usr/share/OVMF/OVMF.amdsev.fd',
      attributes: { stateless: 'yes', type: 'rom', readonly: 'yes' },
    });
    expect(info.kernel).toBe('/var/lib/libvirt/boot/vmlinuz');
    expect(info.initrd).toBe('/var/lib/libvirt/boot/initrd.img');
    expect(info.cmdline).toBe('console=ttyS0 root=/dev/mapper/root rd.luks.name=x&y quiet');
    const ls = info.launchSecurity!;
    expect(WITH_LS.slice(ls.start, ls.end)).toBe(LS_BLOCK.trim());
    expect(ls.attributes).toEqual([
      ['kernelHashes', 'yes'],
      ['type', 'sev'],
    ]);
    expect(ls.children.map((c) => [c.name, c.text])).toEqual([
      ['cbitpos', '47'],
      ['reducedPhysBits', '1'],
      ['policy', '0x0001'],
      ['dhCert', 'old'],
      ['session', 'old'],
    ]);
  });

  it('refuses malformed XML, a non-domain root, two launchSecurity elements, bad UTF-8', () => {
    expect(() => parseDomainXml('<domain><name>x</name>')).toThrow(DomainXmlError);
    expect(() => parseDomainXml('<domain><name>x</nam></domain>')).toThrow(/malformed/);
    expect(() => parseDomainXml('<network><name>x</name></network>')).toThrow(/not <domain>/);
    expect(() => parseDomainXml('<domain><vcpu>x</vcpu><name>a</name></domain>')).toThrow(/vcpu/);
    expect(() =>
      parseDomainXml(
        "<domain><name>a</name><launchSecurity type='sev'/><launchSecurity type='sev'/></domain>",
      ),
    ).toThrow(/more than one/);
    expect(() => domainXmlText(Uint8Array.of(0x3c, 0xff, 0x3e))).toThrow(/UTF-8/);
  });

  it('policy is written as libvirt reads it: hexadecimal', () => {
    expect(policyHexForLibvirt(7)).toBe('0x0007');
    expect(policyHexForLibvirt(0x05)).toBe('0x0005');
    expect(policyHexForLibvirt(0x00170005)).toBe('0x170005');
    expect(() => policyHexForLibvirt(-1)).toThrow(RangeError);
  });
});

describe('setSevLaunchSecurity keeps every byte outside <launchSecurity>', () => {
  it('replaces an existing element: attributes and cbitpos/reducedPhysBits kept, the rest byte-identical', () => {
    const out = setSevLaunchSecurity(WITH_LS, { policy: 0x7, dhCert: DH, session: SESSION });
    const ls = parseDomainXml(WITH_LS).launchSecurity!;
    const middle = expectOnlySpanChanged(WITH_LS, out, ls.start, ls.end);
    expect(middle).toBe(
      [
        "<launchSecurity kernelHashes='yes' type='sev'>",
        '    <cbitpos>47</cbitpos>',
        '    <reducedPhysBits>1</reducedPhysBits>',
        '    <policy>0x0007</policy>',
        `    <dhCert>${DH}</dhCert>`,
        `    <session>${SESSION}</session>`,
        '  </launchSecurity>',
      ].join('\n'),
    );
    const again = parseDomainXml(out);
    expect(again.launchSecurity!.children.find((c) => c.name === 'session')!.text).toBe(SESSION);
    // Idempotent on its own output: a second edit changes only the element again.
    const out2 = setSevLaunchSecurity(out, { policy: 0x1, dhCert: 'X===', session: 'Y===' });
    const ls2 = again.launchSecurity!;
    expectOnlySpanChanged(out, out2, ls2.start, ls2.end);
  });

  it('inserts before </domain> with the siblings indentation when there is none', () => {
    const out = setSevLaunchSecurity(REALISTIC, {
      policy: 0x5,
      dhCert: DH,
      session: SESSION,
      cbitpos: 51,
      reducedPhysBits: 1,
    });
    const at = REALISTIC.lastIndexOf('</domain>');
    const middle = expectOnlySpanChanged(REALISTIC, out, at, at);
    expect(middle).toBe(
      [
        "  <launchSecurity type='sev'>",
        '    <cbitpos>51</cbitpos>',
        '    <reducedPhysBits>1</reducedPhysBits>',
        '    <policy>0x0005</policy>',
        `    <dhCert>${DH}</dhCert>`,
        `    <session>${SESSION}</session>`,
        '  </launchSecurity>',
        '',
      ].join('\n'),
    );
    expect(parseDomainXml(out).launchSecurity!.attributes).toEqual([['type', 'sev']]);
  });

  it('keeps a BOM, a self-closing element, 4-space and tab indentation, and a one-line document', () => {
    const bom = '\ufeff' + WITH_LS;
    const bytes = enc(bom);
    expect(bytes[0]).toBe(0xef);
    const text = domainXmlText(bytes);
    expect(text.charCodeAt(0)).toBe(0xfeff);
    const out = setSevLaunchSecurity(text, { policy: 1, dhCert: DH, session: SESSION });
    const ls = parseDomainXml(text).launchSecurity!;
    expectOnlySpanChanged(text, out, ls.start, ls.end);
    expect(enc(out)[0]).toBe(0xef);

    const four = "<domain type='kvm'>\n    <name>a</name>\n    <launchSecurity type='sev'/>\n</domain>\n";
    const o4 = setSevLaunchSecurity(four, { policy: 3, dhCert: 'D===', session: 'S===' });
    expect(o4).toBe(
      "<domain type='kvm'>\n    <name>a</name>\n    <launchSecurity type='sev'>\n        <policy>0x0003</policy>\n" +
        '        <dhCert>D===</dhCert>\n        <session>S===</session>\n    </launchSecurity>\n</domain>\n',
    );
    const tabs = '<domain>\n\t<name>a</name>\n</domain>';
    expect(setSevLaunchSecurity(tabs, { policy: 1, dhCert: 'D===', session: 'S===' })).toBe(
      "<domain>\n\t<name>a</name>\n\t<launchSecurity type='sev'>\n\t\t<policy>0x0001</policy>\n" +
        '\t\t<dhCert>D===</dhCert>\n\t\t<session>S===</session>\n\t</launchSecurity>\n</domain>',
    );
    const oneLine = '<domain><name>a</name></domain>';
    const o1 = setSevLaunchSecurity(oneLine, { policy: 1, dhCert: 'D===', session: 'S===' });
    expect(o1.startsWith('<domain><name>a</name><launchSecurity')).toBe(true);
    expect(o1.endsWith('</launchSecurity></domain>')).toBe(true);
    expect(parseDomainXml(o1).launchSecurity).toBeDefined();
  });

  it('refuses a launchSecurity of another type', () => {
    const snp = WITH_LS.replace("type='sev'>", "type='sev-snp'>");
    expect(() => setSevLaunchSecurity(snp, { policy: 1, dhCert: DH, session: SESSION })).toThrow(/sev-snp/);
  });

  it('a DOM-free splice: comments/CDATA mentioning launchSecurity do not confuse it', () => {
    const tricky = WITH_LS.replace(
      '<on_poweroff>',
      '<!-- <launchSecurity type="sev"></launchSecurity> --><on_poweroff>',
    ).replace('<title>', '<title><![CDATA[</launchSecurity>]]>');
    const out = setSevLaunchSecurity(tricky, { policy: 1, dhCert: DH, session: SESSION });
    const ls = parseDomainXml(tricky).launchSecurity!;
    expect(tricky.slice(ls.start, ls.start + 15)).toBe('<launchSecurity');
    expectOnlySpanChanged(tricky, out, ls.start, ls.end);
  });
});
