/**
 * AMD key server (KDS) client for SEV-SNP (docs/protocol.md §12), built on the SEV client's KdsHttp
 * (retries, Retry-After, timeouts):
 *   VCEK   GET {base}/vcek/v1/{Milan|Genoa}/{hwid}?blSPL=&teeSPL=&snpSPL=&ucodeSPL=
 *          GET {base}/vcek/v1/Turin/{hwid}?fmcSPL=&blSPL=&teeSPL=&snpSPL=&ucodeSPL=
 *          hwid = chip_id as lower-case hex: 64 bytes, or the first 8 bytes on Turin; SPLs in decimal.
 *   chains GET {base}/vcek/v1/{product}/cert_chain (ASK, ARK PEM), {base}/vlek/v1/{product}/cert_chain (ASVK, ARK)
 *   CRL    GET {base}/vcek/v1/{product}/crl (DER, signed by the ARK)
 * Before the network: an offline store an owner fills by hand, then an on-disk cache.
 */
import { mkdir, readdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { KdsHttp, KDS_DEFAULT_BASE_URL, type KdsClientOptions } from '../sev/kds';
import { SevError } from '../sev/errors';
import { keyExtensions, parseSnpCert, pemCertificates, productOfKey } from './chain';
import { parseCrl } from './crl';
import { SnpError } from './errors';
import type { SnpProduct } from './roots';
import { tcbComponents, type TcbParts } from './tcb';

export { KDS_DEFAULT_BASE_URL };

/** The hwid path segment: the chip id in lower-case hex (Turin: its first 8 bytes). */
export function hwidHex(product: SnpProduct, chipId: Uint8Array): string {
  if (chipId.length !== 64)
    throw new SnpError('bad-report', `chip id: expected 64 bytes, got ${chipId.length}`);
  return Buffer.from(product === 'Turin' ? chipId.subarray(0, 8) : chipId).toString('hex');
}

const QUERY_NAME: Record<keyof TcbParts, string> = {
  fmc: 'fmcSPL',
  bootloader: 'blSPL',
  tee: 'teeSPL',
  snp: 'snpSPL',
  microcode: 'ucodeSPL',
};
const FILE_NAME: Record<keyof TcbParts, string> = {
  fmc: 'fmc',
  bootloader: 'bl',
  tee: 'tee',
  snp: 'snp',
  microcode: 'ucode',
};

/** `blSPL=3&teeSPL=0&snpSPL=8&ucodeSPL=115` (Turin starts with fmcSPL). */
export function tcbQuery(product: SnpProduct, tcb: TcbParts): string {
  return tcbComponents(product)
    .map((c) => `${QUERY_NAME[c]}=${tcb[c] ?? 0}`)
    .join('&');
}

/** The offline store's file stem for a TCB: `bl3-tee0-snp8-ucode115` (Turin: `fmc1-bl…`). */
export function tcbFileStem(product: SnpProduct, tcb: TcbParts): string {
  return tcbComponents(product)
    .map((c) => `${FILE_NAME[c]}${tcb[c] ?? 0}`)
    .join('-');
}

const CERT_FILE = /\.(der|pem|crt|cer)$/i;

/** True when a VCEK (DER or PEM) is for this product, chip and TCB, judged by its extensions. */
export function vcekMatches(
  bytes: Uint8Array,
  product: SnpProduct,
  chipId: Uint8Array,
  tcb: TcbParts,
): boolean {
  let cert;
  try {
    cert = parseSnpCert(bytes, 'VCEK');
    const p = productOfKey(cert);
    if (p !== undefined && p !== product) return false;
    const ext = keyExtensions(cert, product, 'VCEK');
    const want = product === 'Turin' ? chipId.subarray(0, 8) : chipId;
    if (!ext.hwid || Buffer.compare(ext.hwid, want) !== 0) return false;
    return tcbComponents(product).every((c) => ext.tcb[c] === tcb[c]);
  } catch {
    return false;
  }
}

/**
 * A folder of VCEKs the owner fills by hand (for machines that must not reach AMD):
 * `<dir>/<Product>/<hwid hex>/<tcb stem>.der` (for example `Milan/d4955…/bl3-tee0-snp8-ucode115.der`) is
 * looked up first; otherwise every `.der/.pem/.crt/.cer` file up to three folders deep is read and the one
 * whose hwid and TCB extensions match is used, whatever its name.
 */
export class OfflineVcekStore {
  constructor(
    readonly dir: string,
    private readonly maxFiles = 10_000,
  ) {}

  pathFor(product: SnpProduct, chipId: Uint8Array, tcb: TcbParts): string {
    return path.join(this.dir, product, hwidHex(product, chipId), `${tcbFileStem(product, tcb)}.der`);
  }

  async find(product: SnpProduct, chipId: Uint8Array, tcb: TcbParts): Promise<Uint8Array | undefined> {
    const direct = this.pathFor(product, chipId, tcb);
    for (const f of [direct, direct.replace(/\.der$/, '.pem')]) {
      const b = await readFile(f).catch(() => undefined);
      if (b && vcekMatches(new Uint8Array(b), product, chipId, tcb)) return new Uint8Array(b);
    }
    let seen = 0;
    const walk = async (d: string, depth: number): Promise<Uint8Array | undefined> => {
      const entries = await readdir(d, { withFileTypes: true }).catch(() => []);
      entries.sort((a, b) => a.name.localeCompare(b.name));
      for (const e of entries) {
        const p = path.join(d, e.name);
        if (e.isDirectory() && depth < 3) {
          const hit = await walk(p, depth + 1);
          if (hit) return hit;
        } else if (e.isFile() && CERT_FILE.test(e.name)) {
          if (++seen > this.maxFiles) return undefined;
          const b = await readFile(p).catch(() => undefined);
          if (b && b.length < 64 * 1024 && vcekMatches(new Uint8Array(b), product, chipId, tcb)) {
            return new Uint8Array(b);
          }
        }
      }
      return undefined;
    };
    return walk(this.dir, 0);
  }
}

async function writeAtomic(target: string, data: Uint8Array): Promise<void> {
  await mkdir(path.dirname(target), { recursive: true });
  const tmp = `${target}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    await writeFile(tmp, data, { mode: 0o644 });
    await rename(tmp, target);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
}

/**
 * Where downloaded VCEKs, chains and CRLs are kept, by a relative name (`vcek/<product>/<hwid>/<tcb>.der`,
 * `<kind>-chain/<product>.pem`, `crl/<product>.der`). What comes back is checked again before use.
 */
export interface SnpKdsCache {
  read(name: string): Promise<Uint8Array | undefined>;
  write(name: string, body: Uint8Array): Promise<void>;
}

/** An SnpKdsCache of files under a directory (written atomically). */
export class DiskSnpKdsCache implements SnpKdsCache {
  constructor(readonly dir: string) {}

  async read(name: string): Promise<Uint8Array | undefined> {
    const b = await readFile(path.join(this.dir, name)).catch(() => undefined);
    return b ? new Uint8Array(b) : undefined;
  }

  async write(name: string, body: Uint8Array): Promise<void> {
    await writeAtomic(path.join(this.dir, name), body);
  }
}

export interface SnpKdsOptions extends Omit<KdsClientOptions, 'cache'> {
  /** Keep downloaded VCEKs, chains and CRLs here (written atomically). */
  cacheDir?: string;
  /** Another cache (serve --database: the shared database); takes the place of cacheDir. */
  cache?: SnpKdsCache;
  /** Look VCEKs up here before the cache and the network. */
  offlineDir?: string;
}

export type VcekSource = 'offline' | 'cache' | 'kds';

/** Fetches VCEKs, chains and CRLs for SNP reports (see the module comment). */
export class SnpKdsClient {
  private readonly http: KdsHttp;
  private readonly cache: SnpKdsCache | undefined;
  private readonly offline: OfflineVcekStore | undefined;

  constructor(opts: SnpKdsOptions = {}) {
    this.http = new KdsHttp(opts);
    this.cache = opts.cache ?? (opts.cacheDir !== undefined ? new DiskSnpKdsCache(opts.cacheDir) : undefined);
    this.offline = opts.offlineDir !== undefined ? new OfflineVcekStore(opts.offlineDir) : undefined;
  }

  vcekUrl(product: SnpProduct, chipId: Uint8Array, tcb: TcbParts): string {
    return `${this.http.baseUrl}/vcek/v1/${product}/${hwidHex(product, chipId)}?${tcbQuery(product, tcb)}`;
  }

  chainUrl(product: SnpProduct, kind: 'vcek' | 'vlek'): string {
    return `${this.http.baseUrl}/${kind}/v1/${product}/cert_chain`;
  }

  crlUrl(product: SnpProduct): string {
    return `${this.http.baseUrl}/vcek/v1/${product}/crl`;
  }

  /** GET through KdsHttp, turning its outcomes into SnpErrors: 404 'kds-not-found', else 'kds-unavailable'. */
  private async get(url: string, what: string, accept: string, validate: (b: Uint8Array) => void) {
    let r;
    try {
      r = await this.http.get(url, {
        accept,
        what,
        validate: (b) => {
          try {
            validate(b);
          } catch (e) {
            throw new SevError(
              'kds-unavailable',
              `AMD KDS answer from ${url} is not ${what}: ${(e as Error).message}`,
            );
          }
        },
      });
    } catch (e) {
      if (e instanceof SevError) throw new SnpError('kds-unavailable', e.message);
      throw e;
    }
    if (r.status === 404)
      throw new SnpError('kds-not-found', `AMD KDS (${url}) does not have ${what} (HTTP 404)`);
    return r.body;
  }

  /** The VCEK for a chip at a TCB: offline store, then cache, then the key server (then cached). */
  async getVcek(
    product: SnpProduct,
    chipId: Uint8Array,
    tcb: TcbParts,
  ): Promise<{ der: Uint8Array; source: VcekSource }> {
    if (chipId.every((b) => b === 0)) {
      throw new SnpError('chip-id-masked', 'the report masks its chip id, so its VCEK cannot be looked up');
    }
    if (this.offline) {
      const hit = await this.offline.find(product, chipId, tcb);
      if (hit) return { der: hit, source: 'offline' };
    }
    const cached = this.cache
      ? ['vcek', product, hwidHex(product, chipId), `${tcbFileStem(product, tcb)}.der`].join('/')
      : undefined;
    if (cached) {
      const b = await this.cache!.read(cached).catch(() => undefined);
      if (b && vcekMatches(new Uint8Array(b), product, chipId, tcb))
        return { der: new Uint8Array(b), source: 'cache' };
    }
    const url = this.vcekUrl(product, chipId, tcb);
    const der = await this.get(
      url,
      `the ${product} VCEK for this chip and TCB`,
      'application/x-x509-ca-cert',
      (b) => {
        if (!vcekMatches(b, product, chipId, tcb)) throw new Error('not a VCEK for this chip and TCB');
      },
    );
    if (cached) await this.cache!.write(cached, der).catch(() => undefined);
    return { der, source: 'kds' };
  }

  /** The intermediate (ASK or ASVK) and the ARK, DER, as the key server serves them. */
  async getChain(
    product: SnpProduct,
    kind: 'vcek' | 'vlek',
  ): Promise<{ intermediate: Uint8Array; ark: Uint8Array }> {
    const split = (b: Uint8Array) => {
      const certs = pemCertificates(Buffer.from(b).toString('latin1'));
      if (certs.length !== 2) throw new Error(`expected 2 PEM certificates, found ${certs.length}`);
      certs.forEach((c, i) => parseSnpCert(c, `certificate ${i + 1}`));
      return { intermediate: certs[0]!, ark: certs[1]! };
    };
    const cached = this.cache ? `${kind}-chain/${product}.pem` : undefined;
    if (cached) {
      const b = await this.cache!.read(cached).catch(() => undefined);
      if (b) {
        try {
          return split(new Uint8Array(b));
        } catch {
          // damaged: fetched again below
        }
      }
    }
    const body = await this.get(
      this.chainUrl(product, kind),
      `the ${product} ${kind.toUpperCase()} chain`,
      'application/x-pem-file',
      (b) => {
        split(b);
      },
    );
    if (cached) await this.cache!.write(cached, body).catch(() => undefined);
    return split(body);
  }

  /**
   * The product's CRL (DER). A cached copy is used while its nextUpdate is ahead of `now`; otherwise it
   * is fetched again. Signature and freshness are checked by the verifier (crl.ts), not here.
   */
  async getCrl(
    product: SnpProduct,
    now: Date = new Date(),
  ): Promise<{ der: Uint8Array; source: 'cache' | 'kds' }> {
    const cached = this.cache ? `crl/${product}.der` : undefined;
    if (cached) {
      const b = await this.cache!.read(cached).catch(() => undefined);
      if (b) {
        try {
          const crl = parseCrl(new Uint8Array(b));
          if (crl.nextUpdate && crl.nextUpdate.getTime() > now.getTime())
            return { der: new Uint8Array(b), source: 'cache' };
        } catch {
          // damaged: fetched again below
        }
      }
    }
    const der = await this.get(this.crlUrl(product), `the ${product} CRL`, 'application/pkix-crl', (b) => {
      parseCrl(b);
    });
    if (cached) await this.cache!.write(cached, der).catch(() => undefined);
    return { der, source: 'kds' };
  }
}
