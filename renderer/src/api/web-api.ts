/**
 * SevAttestApi in a browser (`sev-attest serve --ui`): each call is `POST /ui/api/<channel>` with the JSON
 * argument list, events arrive over one EventSource (`GET /ui/events`). The session cookie (HttpOnly,
 * SameSite=Strict) authenticates; the custom header is what the server's CSRF check requires.
 * Artifact import uploads the File itself (XMLHttpRequest PUT with progress, cancellable): in the browser
 * `files.pathFor(file)` returns an upload handle instead of a path.
 */
import {
  ApiError,
  apiErrorOf,
  apiFromTransport,
  EVENT_CHANNELS,
  isAllowedExternalUrl,
  type ArtifactImportRequest,
  type ArtifactInspection,
  type ArtifactProgress,
  type EventChannel,
  type EventChannels,
  type InvokeArgs,
  type InvokeChannel,
  type InvokeResult,
  type IpcResponse,
  type SevAttestApi,
} from '../../../app/contract/ipc';
import type { ErrorCode } from '../../../app/errors';

/** The header every state-changing request carries (the server refuses requests without it). */
export const UI_CSRF_HEADER = 'X-SEV-Attest-UI';
export const UPLOAD_HANDLE_PREFIX = 'upload:';
/** Least time between two upload progress reports (ms). */
export const UPLOAD_PROGRESS_MS = 100;

export interface WebApiOptions {
  /** Base URL of the UI server; default: this page's origin. */
  baseUrl?: string;
  fetch?: typeof fetch;
  EventSource?: typeof EventSource;
  XMLHttpRequest?: typeof XMLHttpRequest;
}

function toResponse(status: number, text: string): IpcResponse<unknown> {
  try {
    const body = JSON.parse(text) as Partial<IpcResponse<unknown>> & { error?: string; message?: string };
    if (body && typeof body === 'object' && typeof body.ok === 'boolean') return body as IpcResponse<unknown>;
    if (typeof body.error === 'string') {
      // The bridge answers only with the contract's codes.
      return { ok: false, error: body.error as ErrorCode, message: body.message ?? `HTTP ${status}` };
    }
  } catch {
    // fall through
  }
  return { ok: false, error: status === 401 ? 'unauthorized' : 'http-error', message: `HTTP ${status}` };
}

function unwrap<T>(res: IpcResponse<T>): T {
  if (res.ok) return res.value;
  throw new ApiError(res.error, res.message);
}

/** Builds the browser implementation of the contract. */
export function createWebApi(options: WebApiOptions = {}): SevAttestApi {
  const base = options.baseUrl ?? '';
  const doFetch = options.fetch ?? globalThis.fetch.bind(globalThis);
  const ES = options.EventSource ?? globalThis.EventSource;
  const XHR = options.XMLHttpRequest ?? globalThis.XMLHttpRequest;

  async function invoke<K extends InvokeChannel>(
    channel: K,
    ...args: InvokeArgs<K>
  ): Promise<InvokeResult<K>> {
    // JSON has no undefined (JSON.stringify writes null in an array): drop trailing optional arguments, as
    // the schemas accept them absent but not null.
    const sent: unknown[] = [...args];
    while (sent.length > 0 && sent[sent.length - 1] === undefined) sent.pop();
    let res: Response;
    try {
      res = await doFetch(`${base}/ui/api/${channel}`, {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'content-type': 'application/json', [UI_CSRF_HEADER]: '1' },
        body: JSON.stringify(sent),
      });
    } catch (e) {
      throw new ApiError('unreachable', `the SEV Attest service did not answer (${String(e)})`);
    }
    return unwrap(toResponse(res.status, await res.text())) as InvokeResult<K>;
  }

  // One EventSource for all subscriptions, opened on first use.
  const listeners = new Map<EventChannel, Set<(payload: unknown) => void>>();
  let source: EventSource | undefined;
  function deliver(channel: EventChannel, payload: unknown): void {
    for (const l of [...(listeners.get(channel) ?? [])]) l(payload);
  }
  function subscribe<K extends EventChannel>(channel: K, listener: EventChannels[K]): () => void {
    const fn = listener as (payload: unknown) => void;
    if (!listeners.has(channel)) listeners.set(channel, new Set());
    listeners.get(channel)!.add(fn);
    if (!source && ES) {
      source = new ES(`${base}/ui/events`, { withCredentials: true });
      for (const c of EVENT_CHANNELS) {
        source.addEventListener(c, (ev) => {
          try {
            deliver(c, JSON.parse((ev as MessageEvent<string>).data));
          } catch {
            // A malformed event is dropped; the next snapshot corrects the view.
          }
        });
      }
    }
    return () => {
      listeners.get(channel)?.delete(fn);
    };
  }

  // Browser files waiting to be uploaded, by handle.
  const files = new Map<string, File>();
  const uploads = new Map<string, XMLHttpRequest>();
  let nextHandle = 1;

  function upload(request: ArtifactImportRequest, file: File): Promise<ArtifactInspection> {
    return new Promise((resolve, reject) => {
      const xhr = new XHR();
      uploads.set(request.importId, xhr);
      const progress = (p: Omit<ArtifactProgress, 'importId' | 'total'>) =>
        deliver('artifacts:progress', { importId: request.importId, total: file.size, ...p });
      // The file's name travels with it (the server checks it and keeps it in the artifact index).
      const q = new URLSearchParams({ importId: request.importId, kind: request.kind, name: file.name });
      xhr.open('PUT', `${base}/ui/upload?${q.toString()}`);
      xhr.withCredentials = true;
      xhr.setRequestHeader(UI_CSRF_HEADER, '1');
      xhr.setRequestHeader('content-type', 'application/octet-stream');
      // One progress report per UPLOAD_PROGRESS_MS at most: each one re-renders the progress bar.
      let lastProgress = -Infinity;
      xhr.upload.onprogress = (e) => {
        const now = performance.now();
        if (now - lastProgress < UPLOAD_PROGRESS_MS && e.loaded < file.size) return;
        lastProgress = now;
        progress({ phase: 'uploading', bytes: e.loaded });
      };
      xhr.onload = () => {
        uploads.delete(request.importId);
        try {
          // A refusal (e.g. 413 payload-too-large) carries the service's own JSON message.
          const value = unwrap(toResponse(xhr.status, xhr.responseText)) as ArtifactInspection;
          files.delete(request.path);
          progress({ phase: 'done', bytes: file.size });
          resolve(value);
        } catch (e) {
          progress({ phase: 'error', bytes: 0, message: apiErrorOf(e).message });
          reject(e);
        }
      };
      xhr.onerror = () => {
        uploads.delete(request.importId);
        const message = 'the connection to the SEV Attest service broke off before it answered the upload';
        progress({ phase: 'error', bytes: 0, message });
        reject(new ApiError('unreachable', message));
      };
      xhr.onabort = () => {
        uploads.delete(request.importId);
        progress({ phase: 'cancelled', bytes: 0 });
        reject(new ApiError('cancelled', 'the import was cancelled'));
      };
      xhr.send(file);
    });
  }

  const fromContract = apiFromTransport(invoke, subscribe);
  const api: SevAttestApi = {
    ...fromContract,
    artifacts: {
      ...fromContract.artifacts,
      // In the browser the page uploads the File itself; a path means nothing to the server.
      import: (request) => {
        const file = files.get(request.path);
        if (!file) {
          return Promise.reject(
            new ApiError('not-supported', 'in the browser, import a file chosen or dropped in this page'),
          );
        }
        return upload(request, file);
      },
      cancelImport: async (importId) => {
        const xhr = uploads.get(importId);
        if (xhr) xhr.abort();
        else await invoke('artifacts:cancelImport', importId);
      },
    },
    shell: {
      // Same allow-list as main; the browser opens it itself, without an opener.
      openExternal: async (url) => {
        if (!isAllowedExternalUrl(url)) throw new ApiError('url-not-allowed', `not an allowed link: ${url}`);
        window.open(url, '_blank', 'noopener,noreferrer');
      },
    },
    files: {
      pathFor: (file) => {
        const handle = `${UPLOAD_HANDLE_PREFIX}${nextHandle++}:${file.name}`;
        files.set(handle, file);
        return handle;
      },
    },
  };
  return api;
}
