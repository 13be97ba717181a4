/**
 * The unsigned-CEK path through real HTTP: the host sends cpu-id and no cek; the listener fetches the
 * ASK-signed CEK from a local stand-in for AMD's key server (--kds-url), caches it on disk, and the flow
 * completes. A key server that is down gives 502 kds-unavailable, never a trusted chain.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { LUKS_PASSPHRASE_GUID } from '../../app/profile';
import { toBase64, toHex } from '../../app/sev/bytes';
import {
  hostFlow,
  launchBody,
  platform,
  registerVm,
  request,
  startHarness,
  type Harness,
} from '../helpers/listener-harness';

let kds: http.Server;
let kdsUrl: string;
const hits: string[] = [];
let h: Harness;

beforeAll(async () => {
  kds = http.createServer((req, res) => {
    hits.push(req.url ?? '');
    if (req.url === `/cek/id/${toHex(platform().chipId).toUpperCase()}`) {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.end(Buffer.from(platform().signedCek));
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise<void>((r) => kds.listen(0, '127.0.0.1', r));
  kdsUrl = `http://127.0.0.1:${(kds.address() as AddressInfo).port}`;
  h = await startHarness({ kdsUrl });
  expect((await registerVm(h, { id: 'vm1', passphrase: 'via kds' })).status).toBe(200);
});
afterAll(async () => {
  await h.close();
  await new Promise((r) => kds.close(r));
});

const withoutCek = () => {
  const b = launchBody({ policy: 1, 'cpu-id': toBase64(platform().chipId) });
  delete b.cek;
  return b;
};

it('fetches the signed CEK by chip id, caches it, and the flow completes', async () => {
  const first = await hostFlow(h, { vmId: 'vm1', launchExtra: { ...withoutCek(), cek: undefined } });
  expect(first.launch.status).toBe(200);
  expect(first.secret?.get(LUKS_PASSPHRASE_GUID)).toBe('via kds');
  const second = await request(h.svc.url, 'POST', '/v1/vm/vm1/launch', { body: withoutCek(), token: null });
  expect(second.status).toBe(200);
  expect(hits.filter((u) => u.startsWith('/cek/id/'))).toHaveLength(1);
  const ev = await request(h.svc.url, 'GET', '/v1/events?type=launch&vm=vm1&result=ok');
  expect(ev.json.events.at(-1).chipId).toBe(toHex(platform().chipId));
});

it('a key server that is down: 502 kds-unavailable', async () => {
  const down = await startHarness({ kdsUrl: 'http://127.0.0.1:9' });
  try {
    await registerVm(down, { id: 'vm1' });
    const r = await request(down.svc.url, 'POST', '/v1/vm/vm1/launch', { body: withoutCek(), token: null });
    expect(r.status).toBe(502);
    expect(r.json.error).toBe('kds-unavailable');
  } finally {
    await down.close();
  }
});
