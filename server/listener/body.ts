/**
 * Reading a request body within a limit, for every listener route (REST, bundles, host setup, /kbs/v0).
 * The errors are transport-neutral so each route answers in its own error shape (the REST {"error"} body,
 * Trustee's {"type", "detail"}).
 */
import type * as http from 'node:http';

/** The body is over the route's limit (answer 413); the rest of it is being discarded. */
export class BodyTooLarge extends Error {
  constructor(
    readonly limit: number,
    message = `the body is larger than ${limit} bytes`,
  ) {
    super(message);
  }
}

/** The body could not be read (socket error, client aborted). */
export class BodyUnreadable extends Error {}

/** The media type of the request without parameters, lower-case ('' when absent). */
export function mediaType(req: http.IncomingMessage): string {
  return (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
}

/** Swallows the rest of an oversized body up to a cap (so the client reads the 413), then cuts it off. */
export function discardBody(req: http.IncomingMessage): void {
  let seen = 0;
  req.on('data', (c: Buffer) => {
    seen += c.length;
    if (seen > 16 * 1024 * 1024) req.socket.destroy();
  });
  req.resume();
}

/** The whole body, refused as soon as the declared or received size passes the limit. */
export function readBodyLimited(req: http.IncomingMessage, limit: number): Promise<Buffer> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > limit) {
    discardBody(req);
    return Promise.reject(new BodyTooLarge(limit));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const fail = (e: Error) => {
      if (done) return;
      done = true;
      chunks.length = 0;
      reject(e);
    };
    req.on('data', (c: Buffer) => {
      if (done) return;
      size += c.length;
      if (size > limit) {
        fail(new BodyTooLarge(limit));
        discardBody(req);
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      if (done) return;
      done = true;
      resolve(Buffer.concat(chunks));
    });
    req.on('error', (e) => fail(new BodyUnreadable(`the body could not be read: ${e.message}`)));
    req.on('aborted', () => fail(new BodyUnreadable('the client aborted the request')));
  });
}
