/**
 * A stand-in for AMD's key server (KDS, docs/protocol.md §12.5) serving simulated chips on 127.0.0.1, so
 * the service, the demo and the tests fetch VCEKs, chains and CRLs exactly as from kdsintf.amd.com:
 *   GET /vcek/v1/{product}/{hwid}?blSPL=&teeSPL=&snpSPL=&ucodeSPL=   (Turin: fmcSPL first, 8-byte hwid)
 *   GET /vcek/v1/{product}/cert_chain    ASK then ARK, PEM
 *   GET /vlek/v1/{product}/cert_chain    ASVK then ARK, PEM
 *   GET /vcek/v1/{product}/crl           DER
 * A hwid the stand-in does not know is 404 (as AMD answers); `failWith` makes every answer that status
 * (a key server that is down).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { SnpProduct } from '../snp/roots';
import { tcbComponents, type TcbParts } from '../snp/tcb';
import type { SimulatedSnpFirmware } from './snp-firmware';

const QUERY: Record<keyof TcbParts, string> = {
  fmc: 'fmcSPL',
  bootloader: 'blSPL',
  tee: 'teeSPL',
  snp: 'snpSPL',
  microcode: 'ucodeSPL',
};

export interface KdsStandInRequest {
  method: string;
  path: string;
  status: number;
}

export class SnpKdsStandIn {
  /** Every request answered, in order (tests count fetches). */
  readonly requests: KdsStandInRequest[] = [];
  /** When set, every request is answered with this HTTP status and no body. */
  failWith: number | undefined;
  private server: Server | undefined;
  private readonly chips: SimulatedSnpFirmware[];

  constructor(chips: readonly SimulatedSnpFirmware[]) {
    this.chips = [...chips];
  }

  /** Serves another chip as well. */
  add(chip: SimulatedSnpFirmware): void {
    this.chips.push(chip);
  }

  /** Starts listening on 127.0.0.1 (an ephemeral port unless given); returns the base URL. */
  async start(port = 0): Promise<string> {
    const server = createServer((req, res) => {
      const answer = (status: number, type?: string, body?: Uint8Array | string) => {
        this.requests.push({ method: req.method ?? '', path: req.url ?? '', status });
        res.writeHead(status, type ? { 'content-type': type } : {});
        res.end(body);
      };
      if (this.failWith !== undefined) return answer(this.failWith);
      if (req.method !== 'GET') return answer(405, 'text/plain', 'GET only\n');
      const url = new URL(req.url ?? '/', 'http://kds.invalid');
      const m = /^\/(vcek|vlek)\/v1\/([A-Za-z]+)\/([^/]+)$/.exec(url.pathname);
      if (!m) return answer(404, 'text/plain', 'not found\n');
      const [, kind, productName, leaf] = m as unknown as [string, 'vcek' | 'vlek', string, string];
      const ofProduct = this.chips.filter((c) => c.product === productName);
      if (ofProduct.length === 0) return answer(404, 'text/plain', `unknown product ${productName}\n`);
      const product = productName as SnpProduct;
      const first = ofProduct[0]!;
      if (leaf === 'cert_chain') {
        return answer(
          200,
          'application/x-pem-file',
          kind === 'vcek' ? first.roots.certChainPem : first.roots.vlekChainPem,
        );
      }
      if (leaf === 'crl') {
        return kind === 'vcek'
          ? answer(200, 'application/pkix-crl', first.roots.crl)
          : answer(404, 'text/plain', 'not found\n');
      }
      if (kind !== 'vcek' || !/^[0-9a-f]+$/.test(leaf)) return answer(404, 'text/plain', 'not found\n');
      const chip = ofProduct.find((c) => Buffer.from(c.hwid()).toString('hex') === leaf);
      if (!chip) return answer(404, 'text/plain', 'no such chip\n');
      const tcb: Partial<TcbParts> = {};
      for (const c of tcbComponents(product)) {
        const v = url.searchParams.get(QUERY[c]);
        if (v === null || !/^\d{1,3}$/.test(v) || Number(v) > 255) {
          return answer(400, 'text/plain', `missing or bad ${QUERY[c]}\n`);
        }
        tcb[c] = Number(v);
      }
      return answer(200, 'application/x-x509-ca-cert', chip.vcek(tcb as TcbParts).der);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    this.server = server;
    return this.baseUrl;
  }

  get baseUrl(): string {
    if (!this.server) throw new Error('the key-server stand-in is not started');
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}

/** Starts a key-server stand-in for these chips; `stop()` when done. */
export async function kdsStandIn(
  chips: readonly SimulatedSnpFirmware[],
  port = 0,
): Promise<SnpKdsStandIn & { url: string }> {
  const s = new SnpKdsStandIn(chips);
  const url = await s.start(port);
  return Object.assign(s, { url });
}
