/**
 * `sev-attest serve --ui`: starts the browser bridge next to a running headless service, on its own
 * loopback port, with the same contract handlers as the desktop app plus the browser's differences
 * (imports arrive as uploads, external links are opened by the browser itself).
 */
import { DomainError } from '../../app/errors';
import type { ArtifactInspection, InvokeHandlers } from '../../app/contract/ipc';
import type { RunningService } from '../serve/serve';
import { connectUiEvents, createInvokeHandlers, settingsFirstRun } from '../owner-api/handlers';
import { UiEventBus } from '../owner-api/event-bus';
import { MAX_ARTIFACT_BYTES } from '../services/owner-service';
import { UiServer, type UploadMeta } from './ui-server';

export interface StartUiOptions {
  rendererDir: string;
  dataDir: string;
  version: string;
  /** Loopback port for the UI (0: any free port). */
  port?: number;
  host?: string;
  log?: (line: string) => void;
  /** Largest browser upload (default MAX_ARTIFACT_BYTES, 2 GiB). */
  maxUploadBytes?: number;
}

export interface RunningUi {
  url: string;
  /** A one-time sign-in link to print (the owner token works in the sign-in form too). */
  loginUrl: string;
  server: UiServer;
  close(): Promise<void>;
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
    firstRun: settingsFirstRun(service),
    openExternal: async () => {
      throw new DomainError('not-supported', 'the browser opens external links itself');
    },
  });
  const handlers: InvokeHandlers = {
    ...base,
    // A path on the server's disk is not the browser user's file: imports come as uploads.
    'artifacts:import': async () => {
      throw new DomainError('not-supported', 'in the browser, artifacts are uploaded (PUT /ui/upload)');
    },
  };
  const maxUploadBytes = opts.maxUploadBytes ?? MAX_ARTIFACT_BYTES;
  // Hashed and written as it streams in; progress (throttled) reaches the page through connectUiEvents.
  const importUpload = (body: AsyncIterable<Uint8Array>, meta: UploadMeta): Promise<ArtifactInspection> =>
    service.imports.importUpload(body, {
      importId: meta.importId,
      kind: meta.kind,
      name: meta.name,
      ...(meta.size !== undefined ? { size: meta.size } : {}),
      maxBytes: maxUploadBytes,
    });
  const server = new UiServer({
    handlers,
    events: bus,
    rendererDir: opts.rendererDir,
    ownerToken: service.ownerToken,
    importUpload,
    maxUploadBytes,
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
