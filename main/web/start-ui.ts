/**
 * `sev-attest serve --ui`: starts the browser bridge next to a running headless service, on its own
 * loopback port, with the same contract handlers as the desktop app plus the browser's differences
 * (imports arrive as uploads, external links are opened by the browser itself).
 */
import { Transform, type Readable } from 'node:stream';
import type { ArtifactInspection, InvokeHandlers } from '../../app/contract/ipc';
import type { RunningService } from '../headless/serve';
import { connectUiEvents, createInvokeHandlers, settingsFirstRun } from '../ipc/handlers';
import { UiEventBus } from '../ipc/event-bus';
import { UiServer, type UploadMeta } from './ui-server';

export interface StartUiOptions {
  rendererDir: string;
  dataDir: string;
  version: string;
  /** Loopback port for the UI (0: any free port). */
  port?: number;
  host?: string;
  log?: (line: string) => void;
}

export interface RunningUi {
  url: string;
  /** A one-time sign-in link to print (the owner token works in the sign-in form too). */
  loginUrl: string;
  server: UiServer;
  close(): Promise<void>;
}

function coded(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

/** Starts the UI server for `service`; close() stops it (the service itself is closed by its owner). */
export async function startUi(service: RunningService, opts: StartUiOptions): Promise<RunningUi> {
  const bus = new UiEventBus();
  const disconnect = connectUiEvents(service, bus);
  const base = createInvokeHandlers({
    service,
    mode: 'browser',
    version: opts.version,
    dataDir: opts.dataDir,
    // The current one: listener:configure may generate or drop it.
    get hostToken() {
      return service.hostToken;
    },
    firstRun: settingsFirstRun(service),
    openExternal: async () => {
      throw coded('not-supported', 'the browser opens external links itself');
    },
  });
  const handlers: InvokeHandlers = {
    ...base,
    // A path on the server's disk is not the browser user's file: imports come as uploads.
    'artifacts:import': async () => {
      throw coded('not-supported', 'in the browser, artifacts are uploaded (PUT /ui/upload)');
    },
  };
  const importUpload = async (body: Readable, meta: UploadMeta): Promise<ArtifactInspection> => {
    let bytes = 0;
    const total = meta.size ?? 0;
    const counter = new Transform({
      transform(chunk: Buffer, _enc, done) {
        bytes += chunk.length;
        bus.emit('artifacts:progress', { importId: meta.importId, phase: 'hashing', bytes, total });
        done(null, chunk);
      },
    });
    const stored = await service.owner.putArtifact(body.pipe(counter));
    bus.emit('artifacts:progress', { importId: meta.importId, phase: 'done', bytes, total: bytes });
    return { ...stored, name: meta.name, kind: meta.kind, importedAt: new Date().toISOString() };
  };
  const server = new UiServer({
    handlers,
    events: bus,
    rendererDir: opts.rendererDir,
    ownerToken: service.ownerToken,
    importUpload,
    ...(opts.host ? { host: opts.host } : {}),
    port: opts.port ?? 0,
    ...(opts.log ? { log: opts.log } : {}),
  });
  const url = await server.start();
  return {
    url,
    loginUrl: server.createLoginUrl(),
    server,
    close: async () => {
      disconnect();
      await server.close();
    },
  };
}
