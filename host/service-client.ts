/**
 * The host's client of the attestation listener (REST API v1, docs/api.md): launch (waiting through 202
 * answers while the owner decides) and validate. Plain node:http/https. With a pinned SHA-256
 * fingerprint the server's certificate is checked before any request byte is sent (the listener's TLS
 * certificate is self-signed, so there is no CA to verify; the pin is the trust).
 */
import { createHash } from 'node:crypto';
import * as http from 'node:http';
import * as https from 'node:https';
import * as tls from 'node:tls';
import type { Duplex } from 'node:stream';
import {
  LaunchResponseSchema,
  ValidateResponseSchema,
  type LaunchRequest,
  type LaunchResponse,
  type ValidateRequest,
  type ValidateResponse,
} from '../app/contract/rest';

/** The service answered with an error, or could not be reached / trusted. */
export class ServiceError extends Error {
  constructor(
    /** The contract error code (`measurement-mismatch` ...) or a client-side one (`unreachable`, `pin-mismatch`, `timeout`, `bad-answer`). */
    readonly code: string,
    message: string,
    readonly status = 0,
  ) {
    super(message);
    this.name = 'ServiceError';
  }
}

/** Normalizes a SHA-256 fingerprint (hex, with or without colons) to lower-case hex. */
export function normalizeFingerprint(s: string): string {
  const hex = s
    .replace(/^sha256[:/]*/i, '')
    .replace(/[:\s]/g, '')
    .toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(hex)) {
    throw new RangeError(`a SHA-256 fingerprint is 64 hex digits (colons allowed), got '${s}'`);
  }
  return hex;
}

export interface ServiceClientOptions {
  /** e.g. https://owner-laptop:8470 or http://127.0.0.1:8470 (through an SSH tunnel). */
  baseUrl: string;
  /** The host token (Authorization: Bearer). */
  token?: string;
  /** SHA-256 fingerprint of the listener's certificate (https only). */
  pinSha256?: string;
  /** Longest total wait for the owner's approval (default 600 s). */
  maxWaitMs?: number;
  /** Per-request time limit (default 30 s). */
  requestTimeoutMs?: number;
  /** Progress lines. */
  log?: (line: string) => void;
  /** For tests: the clock and the sleep used between 202 answers. */
  sleep?: (ms: number) => Promise<void>;
}

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: unknown;
}

/** An https agent whose sockets are handed to requests only after the certificate matched the pin. */
class PinnedAgent extends https.Agent {
  constructor(private readonly pin: string) {
    super({ keepAlive: false, rejectUnauthorized: false });
  }

  override createConnection(
    options: http.ClientRequestArgs,
    oncreate?: (err: Error | null, stream: Duplex) => void,
  ): Duplex | undefined {
    // Returning nothing makes the agent wait for oncreate: the request gets the socket only if pinned.
    const socket = tls.connect({ ...(options as tls.ConnectionOptions), rejectUnauthorized: false });
    const fail = (e: Error) => {
      socket.destroy();
      oncreate?.(e, socket);
    };
    socket.once('error', fail);
    socket.once('secureConnect', () => {
      socket.off('error', fail);
      const cert = socket.getPeerCertificate();
      const got = cert?.raw ? createHash('sha256').update(cert.raw).digest('hex') : '';
      if (got !== this.pin) {
        fail(
          new ServiceError(
            'pin-mismatch',
            `the service's certificate fingerprint ${got ? got.toUpperCase().replace(/(..)(?!$)/g, '$1:') : '(none)'} does not match --pin-sha256`,
          ),
        );
        return;
      }
      oncreate?.(null, socket);
    });
    return undefined;
  }
}

const sleepMs = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class ServiceClient {
  private readonly base: URL;
  private readonly agent: http.Agent | undefined;

  constructor(private readonly opts: ServiceClientOptions) {
    try {
      this.base = new URL(opts.baseUrl);
    } catch {
      throw new RangeError(`--service must be a URL (https://HOST:PORT), got '${opts.baseUrl}'`);
    }
    if (this.base.protocol !== 'http:' && this.base.protocol !== 'https:') {
      throw new RangeError(`--service must be http(s), got '${opts.baseUrl}'`);
    }
    if (opts.pinSha256 !== undefined) {
      if (this.base.protocol !== 'https:') throw new RangeError('--pin-sha256 needs an https:// service URL');
      this.agent = new PinnedAgent(normalizeFingerprint(opts.pinSha256));
    }
  }

  /** The full URL of an API path. */
  url(path: string): string {
    return new URL(this.base.pathname.replace(/\/+$/, '') + path, this.base).href;
  }

  /** POST /v1/vm/{vmid}/launch (or /v1/launch), repeating while the owner has not decided (202). */
  async launch(vmId: string | undefined, body: LaunchRequest): Promise<LaunchResponse> {
    const path = vmId ? `/v1/vm/${encodeURIComponent(vmId)}/launch` : '/v1/launch';
    const maxWait = this.opts.maxWaitMs ?? 600_000;
    const sleep = this.opts.sleep ?? sleepMs;
    let waited = 0;
    for (;;) {
      const a = await this.post(path, body);
      if (a.status === 200) return this.parse(LaunchResponseSchema, a, 'launch');
      if (a.status !== 202) throw this.refusal(a);
      const retry = Math.min(Math.max(Number(a.headers['retry-after']) || 2, 1), 60) * 1000;
      if (waited + retry > maxWait) {
        throw new ServiceError(
          'timeout',
          `the owner did not decide within ${Math.round(maxWait / 1000)} s (the approval stays pending on the owner's side)`,
          202,
        );
      }
      const approval = (a.body as { approval?: string } | undefined)?.approval;
      this.opts.log?.(
        `waiting for the owner's approval${approval ? ` ${approval}` : ''} (${Math.round(waited / 1000)} s so far, next try in ${retry / 1000} s)`,
      );
      await sleep(retry);
      waited += retry;
    }
  }

  /** POST /v1/connections/{connection}/validate. */
  async validate(connection: string, body: ValidateRequest): Promise<ValidateResponse> {
    const a = await this.post(`/v1/connections/${encodeURIComponent(connection)}/validate`, body);
    if (a.status === 200) return this.parse(ValidateResponseSchema, a, 'validate');
    throw this.refusal(a);
  }

  private parse<T>(
    schema: { safeParse(v: unknown): { success: true; data: T } | { success: false } },
    a: Answer,
    what: string,
  ): T {
    const r = schema.safeParse(a.body);
    if (!r.success)
      throw new ServiceError(
        'bad-answer',
        `the service's ${what} answer does not follow the contract`,
        a.status,
      );
    return r.data;
  }

  private refusal(a: Answer): ServiceError {
    const b = a.body as { error?: unknown; message?: unknown } | undefined;
    const code = typeof b?.error === 'string' ? b.error : `http-${a.status}`;
    const message = typeof b?.message === 'string' ? b.message : `HTTP ${a.status}`;
    return new ServiceError(code, `${message} (${code})`, a.status);
  }

  private post(path: string, body: unknown): Promise<Answer> {
    const url = new URL(this.url(path));
    const payload = Buffer.from(JSON.stringify(body));
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'content-length': String(payload.length),
      accept: 'application/json',
    };
    if (this.opts.token) headers.authorization = `Bearer ${this.opts.token}`;
    const mod = url.protocol === 'https:' ? https : http;
    const timeoutMs = this.opts.requestTimeoutMs ?? 30_000;
    return new Promise((resolve, reject) => {
      const req = mod.request(
        url,
        { method: 'POST', headers, ...(this.agent ? { agent: this.agent } : {}) },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size > 1024 * 1024) {
              req.destroy(new ServiceError('bad-answer', 'the service answer is larger than 1 MiB'));
              return;
            }
            chunks.push(c);
          });
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let parsed: unknown;
            try {
              parsed = text ? JSON.parse(text) : undefined;
            } catch {
              parsed = undefined;
            }
            resolve({ status: res.statusCode ?? 0, headers: res.headers, body: parsed });
          });
          res.on('error', (e) => reject(new ServiceError('unreachable', e.message)));
        },
      );
      req.setTimeout(timeoutMs, () =>
        req.destroy(new ServiceError('timeout', `no answer within ${timeoutMs / 1000} s`)),
      );
      req.on('error', (e) => {
        if (e instanceof ServiceError) reject(e);
        else {
          const tlsHint = /self[- ]signed|unable to verify|certificate/i.test(e.message)
            ? ' (the listener uses a self-signed certificate: give --pin-sha256 with the fingerprint `serve` printed)'
            : '';
          reject(new ServiceError('unreachable', `${url.origin}: ${e.message}${tlsHint}`));
        }
      });
      req.end(payload);
    });
  }
}
