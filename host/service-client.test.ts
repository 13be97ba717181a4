/**
 * --pin-sha256: the listener's certificate is checked before any request byte is sent. A raw TLS server
 * counts the application bytes it receives: none with a wrong pin, the request with the right one.
 */
import type { AddressInfo } from 'node:net';
import * as tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateSelfSignedCert } from '../server/listener/tls-cert';
import { ServiceClient, ServiceError } from './service-client';

const cert = generateSelfSignedCert({ names: ['127.0.0.1'] });
let server: tls.Server;
let url: string;
let connections = 0;
let bytesReceived = 0;

const VALIDATE = {
  'api-major': 0,
  'api-minor': 24,
  'build-id': 15,
  policy: 1,
  measurement: 'AA'.repeat(32),
} as const;

beforeAll(async () => {
  server = tls.createServer({ key: cert.keyPem, cert: cert.certPem }, (socket) => {
    socket.on('data', (chunk: Buffer) => {
      bytesReceived += chunk.length;
      const body = JSON.stringify({ error: 'denied', message: 'seen by the server' });
      socket.end(
        `HTTP/1.1 403 Forbidden\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`,
      );
    });
    socket.on('error', () => {});
  });
  server.on('connection', () => connections++);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((r) => server.close(r));
});

describe('ServiceClient --pin-sha256', () => {
  it('a wrong pin: pin-mismatch after the handshake, and not one request byte reaches the server', async () => {
    const before = connections;
    const client = new ServiceClient({ baseUrl: url, pinSha256: 'ab'.repeat(32), token: 'host-token' });
    const err = await client.validate('c1', VALIDATE).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ServiceError);
    expect((err as ServiceError).code).toBe('pin-mismatch');
    // The client connected and read the server's real certificate (its fingerprint is in the message) ...
    expect(connections).toBe(before + 1);
    expect((err as ServiceError).message).toContain(cert.fingerprint);
    // ... and no request (path, token, body) was written.
    expect(bytesReceived).toBe(0);
  });

  it('the right pin (colon form as serve prints it): the request is sent and answered', async () => {
    const client = new ServiceClient({ baseUrl: url, pinSha256: cert.fingerprint });
    const err = await client.validate('c1', VALIDATE).catch((e: unknown) => e);
    expect((err as ServiceError).code).toBe('denied');
    expect((err as ServiceError).status).toBe(403);
    expect(bytesReceived).toBeGreaterThan(0);
  });

  it('a pin needs https and 64 hex digits', () => {
    expect(() => new ServiceClient({ baseUrl: 'http://127.0.0.1:1', pinSha256: 'ab'.repeat(32) })).toThrow(
      /needs an https/,
    );
    expect(() => new ServiceClient({ baseUrl: url, pinSha256: 'abc' })).toThrow(/64 hex digits/);
  });
});
