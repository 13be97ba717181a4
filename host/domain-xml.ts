/**
 * libvirt domain XML for the host side: read what the launch needs (name, vCPUs, loader, direct-boot
 * files, the current <launchSecurity>) and replace or insert <launchSecurity type='sev'> while every
 * other byte of the document stays as it was.
 *
 * How: a real, strict XML parser (saxes) checks the document and reports where each element starts and
 * ends as indices into the source string; the edit splices only the <launchSecurity> span (or inserts a
 * new element just before </domain>). A DOM round trip would re-serialize the whole document (attribute
 * quotes, entities, CDATA, whitespace), which is what this avoids.
 */
import { SaxesParser, type SaxesTagPlain } from 'saxes';

/** A malformed domain XML, or one this tool cannot edit. */
export class DomainXmlError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DomainXmlError';
  }
}

interface Span {
  /** Index of '<' of the start tag. */
  start: number;
  /** Index just after the '>' that ends the element (the end tag, or '/>'). */
  end: number;
}

export interface LaunchSecurityInfo extends Span {
  /** Attributes in document order (decoded values). */
  attributes: [string, string][];
  /** Child elements in document order: name, decoded text, raw source span. */
  children: { name: string; text: string; start: number; end: number }[];
}

export interface DomainXmlInfo {
  /** /domain/@type (kvm, qemu). */
  type: string | undefined;
  name: string;
  uuid: string | undefined;
  /** /domain/vcpu (the boot vCPU count: `current` when given, else the element's value). */
  vcpus: number;
  loader: { path: string; attributes: Record<string, string> } | undefined;
  kernel: string | undefined;
  initrd: string | undefined;
  cmdline: string | undefined;
  launchSecurity: LaunchSecurityInfo | undefined;
  /** Span of the root element and of its end tag '</domain>' (start of '<' .. end). */
  root: Span & { endTagStart: number };
  /** Source spans of the root's element children, in order. */
  topLevel: (Span & { name: string })[];
}

function decodeUtf8(bytes: Uint8Array): string {
  try {
    // ignoreBOM keeps a byte-order mark in the string, so encoding gives back the same bytes.
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    throw new DomainXmlError('the domain XML is not valid UTF-8');
  }
}

/** The domain XML as a string (libvirt always writes UTF-8); bytes outside any edit survive exactly. */
export function domainXmlText(bytes: Uint8Array): string {
  return decodeUtf8(bytes);
}

/** Parses a libvirt domain XML strictly and locates the elements the launch needs. */
export function parseDomainXml(xml: string): DomainXmlInfo {
  const parser = new SaxesParser({ xmlns: false, position: true });
  const stack: { name: string; start: number; text: string }[] = [];
  const texts = new Map<string, string>();
  const attrsAt = new Map<string, Record<string, string>>();
  const topLevel: (Span & { name: string })[] = [];
  let ls: LaunchSecurityInfo | undefined;
  let lsCount = 0;
  let root: (Span & { endTagStart: number }) | undefined;
  let rootType: string | undefined;
  let error: string | undefined;
  let pendingStart = -1;

  const fail = (msg: string): never => {
    throw new DomainXmlError(msg);
  };

  parser.on('opentagstart', (tag) => {
    // saxes emits this right after reading the name (and possibly one more character).
    const at = xml.lastIndexOf(`<${tag.name}`, parser.position);
    if (at < 0) fail(`cannot locate <${tag.name}> in the source`);
    pendingStart = at;
  });
  parser.on('opentag', (tag: SaxesTagPlain) => {
    const start = pendingStart;
    const path = [...stack.map((s) => s.name), tag.name].join('/');
    stack.push({ name: tag.name, start, text: '' });
    const depth = stack.length;
    if (depth === 1) {
      if (tag.name !== 'domain') fail(`the root element is <${tag.name}>, not <domain>`);
      rootType = tag.attributes.type;
    }
    if (!attrsAt.has(path)) attrsAt.set(path, { ...tag.attributes });
    if (depth === 2 && tag.name === 'launchSecurity') {
      lsCount++;
      ls = { start, end: -1, attributes: Object.entries(tag.attributes), children: [] };
    }
    if (tag.isSelfClosing) return; // closetag follows immediately
  });
  parser.on('text', (t) => {
    const top = stack[stack.length - 1];
    if (top) top.text += t;
  });
  parser.on('cdata', (t) => {
    const top = stack[stack.length - 1];
    if (top) top.text += t;
  });
  parser.on('closetag', (tag) => {
    const end = parser.position;
    if (xml[end - 1] !== '>') fail(`cannot locate the end of <${tag.name}> in the source`);
    const open = stack.pop()!;
    const path = [...stack.map((s) => s.name), open.name].join('/');
    if (!texts.has(path)) texts.set(path, open.text);
    const depth = stack.length + 1;
    if (depth === 2) topLevel.push({ name: open.name, start: open.start, end });
    if (depth === 2 && open.name === 'launchSecurity' && ls && ls.end < 0) ls.end = end;
    if (depth === 3 && stack[1]?.name === 'launchSecurity' && ls && ls.end < 0) {
      ls.children.push({ name: open.name, text: open.text.trim(), start: open.start, end });
    }
    if (depth === 1) {
      const endTagStart = tag.isSelfClosing ? open.start : xml.lastIndexOf('</', end);
      root = { start: open.start, end, endTagStart };
    }
  });
  parser.on('error', (e) => {
    error ??= e.message;
  });
  try {
    parser.write(xml).close();
  } catch (e) {
    error ??= (e as Error).message;
  }
  if (error) throw new DomainXmlError(`the domain XML is malformed: ${error}`);
  if (!root) throw new DomainXmlError('the domain XML has no <domain> element');
  if (lsCount > 1) throw new DomainXmlError('the domain XML has more than one <launchSecurity>');

  const text = (p: string) => {
    const v = texts.get(p);
    return v === undefined ? undefined : v.trim();
  };
  const name = text('domain/name');
  if (!name) throw new DomainXmlError('the domain XML has no <name>');
  const vcpuText = text('domain/vcpu');
  const current = attrsAt.get('domain/vcpu')?.current;
  const vcpus = Number(current ?? vcpuText ?? '1');
  if (!Number.isInteger(vcpus) || vcpus < 1) {
    throw new DomainXmlError(`<vcpu> must be a positive integer, got '${current ?? vcpuText}'`);
  }
  const loaderPath = text('domain/os/loader');
  return {
    type: rootType,
    name,
    uuid: text('domain/uuid'),
    vcpus,
    loader: loaderPath ? { path: loaderPath, attributes: attrsAt.get('domain/os/loader') ?? {} } : undefined,
    kernel: text('domain/os/kernel') || undefined,
    initrd: text('domain/os/initrd') || undefined,
    cmdline: texts.has('domain/os/cmdline') ? text('domain/os/cmdline') : undefined,
    launchSecurity: ls,
    root,
    topLevel,
  };
}

/** libvirt reads <policy> as hexadecimal: 0x0007. */
export function policyHexForLibvirt(policy: number): string {
  if (!Number.isInteger(policy) || policy < 0 || policy > 0xffffffff) {
    throw new RangeError(`policy must be a u32, got ${policy}`);
  }
  return '0x' + policy.toString(16).padStart(4, '0');
}

function escapeText(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function escapeAttr(s: string): string {
  return escapeText(s).replace(/'/g, '&apos;');
}

/** The whitespace that starts the line `index` is on, when only whitespace precedes it on that line. */
function lineIndent(xml: string, index: number): string | undefined {
  const lineStart = xml.lastIndexOf('\n', index - 1) + 1;
  const before = xml.slice(lineStart, index);
  return /^[ \t]*$/.test(before) ? before : undefined;
}

export interface SevLaunchSecurity {
  policy: number;
  /** base64 of the owner's 2084-byte GODH certificate. */
  dhCert: string;
  /** base64 of the 128-byte session blob. */
  session: string;
  /** Filled when the element has none (older libvirt requires them; nodesevinfo reports both). */
  cbitpos?: number;
  reducedPhysBits?: number;
}

/**
 * Returns the document with <launchSecurity type='sev'> holding this policy, dhCert and session. An
 * existing element keeps its attributes (kernelHashes) and other children; every byte outside it stays
 * identical. Without one, the new element goes just before </domain>, indented like its siblings.
 */
export function setSevLaunchSecurity(xml: string, sev: SevLaunchSecurity): string {
  const info = parseDomainXml(xml);
  const ls = info.launchSecurity;
  if (ls) {
    const type = ls.attributes.find(([k]) => k === 'type')?.[1];
    if (type !== 'sev') {
      throw new DomainXmlError(`the domain's <launchSecurity> is type '${type ?? ''}', not 'sev'`);
    }
  }
  // Indentation: the element's own line (or its siblings'), one level more for its children.
  const anchor = ls?.start ?? info.topLevel[info.topLevel.length - 1]?.start;
  const indent = (anchor !== undefined ? lineIndent(xml, anchor) : undefined) ?? '  ';
  const rootIndent = lineIndent(xml, info.root.start) ?? '';
  const unit =
    indent.startsWith(rootIndent) && indent.length > rootIndent.length
      ? indent.slice(rootIndent.length)
      : '  ';
  const inner = indent + unit;
  // The line ending of the line the element goes on (a document may mix them).
  const nl = xml.lastIndexOf('\n', (anchor ?? info.root.endTagStart) - 1);
  const eol = nl > 0 && xml[nl - 1] === '\r' ? '\r\n' : '\n';

  const attrs: [string, string][] = ls ? ls.attributes : [['type', 'sev']];
  const managed = new Set(['policy', 'dhCert', 'session']);
  const lines: string[] = [];
  const existing = new Map((ls?.children ?? []).map((c) => [c.name, c]));
  const cbit = existing.get('cbitpos');
  const rpb = existing.get('reducedPhysBits');
  const keep = (c: { start: number; end: number }) => xml.slice(c.start, c.end);
  if (cbit) lines.push(keep(cbit));
  else if (sev.cbitpos !== undefined) lines.push(`<cbitpos>${sev.cbitpos}</cbitpos>`);
  if (rpb) lines.push(keep(rpb));
  else if (sev.reducedPhysBits !== undefined)
    lines.push(`<reducedPhysBits>${sev.reducedPhysBits}</reducedPhysBits>`);
  lines.push(`<policy>${policyHexForLibvirt(sev.policy)}</policy>`);
  for (const c of ls?.children ?? []) {
    if (!managed.has(c.name) && c.name !== 'cbitpos' && c.name !== 'reducedPhysBits') lines.push(keep(c));
  }
  lines.push(`<dhCert>${escapeText(sev.dhCert)}</dhCert>`);
  lines.push(`<session>${escapeText(sev.session)}</session>`);
  const open = `<launchSecurity${attrs.map(([k, v]) => ` ${k}='${escapeAttr(v)}'`).join('')}>`;
  const element = [open, ...lines.map((l) => inner + l), `${indent}</launchSecurity>`].join(eol);

  if (ls) return xml.slice(0, ls.start) + element + xml.slice(ls.end);

  // Insert before </domain>: on its own line when </domain> starts a line.
  const at = info.root.endTagStart;
  if (at <= info.root.start) throw new DomainXmlError('the <domain> element is empty (<domain/>)');
  const closeIndent = lineIndent(xml, at);
  if (closeIndent !== undefined) {
    const lineStart = at - closeIndent.length;
    return xml.slice(0, lineStart) + indent + element + eol + xml.slice(lineStart);
  }
  return xml.slice(0, at) + element + xml.slice(at);
}
