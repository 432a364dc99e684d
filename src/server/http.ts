/**
 * Small HTTP helpers for the dashboard server: JSON responses (bigint-safe), JSON errors that
 * never carry a stack trace, a bounded body reader, and the security headers every response gets.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

/** An error with an HTTP status whose message is safe to show to the client. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(message);
    this.name = 'HttpError';
    Object.setPrototypeOf(this, new.target.prototype);
  }
}

/** Default limit of a request body (POST /api/commands). */
export const MAX_BODY_BYTES = 1024 * 1024;

/** Headers on every response: no sniffing, no framing, no referrer leaks. */
export const baseHeaders = (): Record<string, string> => ({
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-resource-policy': 'same-origin',
});

/** JSON.stringify that writes bigints as hex (addresses must never pass through a JS number). */
export const toJson = (value: unknown): string => JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v));

export const sendJson = (res: ServerResponse, status: number, body: unknown | { readonly raw: string }, headers: Record<string, string> = {}): void => {
  const text = isRaw(body) ? body.raw : toJson(body);
  res.writeHead(status, {
    ...baseHeaders(),
    'content-type': 'application/json; charset=utf-8',
    'cache-control': 'no-cache',
    'content-length': String(Buffer.byteLength(text)),
    ...headers,
  });
  res.end(text);
};

const isRaw = (b: unknown): b is { readonly raw: string } => typeof b === 'object' && b !== null && typeof (b as { raw?: unknown }).raw === 'string' && Object.keys(b).length === 1;

export const sendError = (res: ServerResponse, status: number, message: string, headers: Record<string, string> = {}): void => {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  sendJson(res, status, { error: { status, message } }, headers);
};

/**
 * Reads a request body up to `limit` bytes. A declared Content-Length above the limit is refused
 * before reading anything; a chunked body is cut off as soon as it crosses the limit.
 */
export const readBody = (req: IncomingMessage, limit = MAX_BODY_BYTES): Promise<Buffer> =>
  new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? NaN);
    if (Number.isFinite(declared) && declared > limit) {
      reject(new HttpError(413, `request body of ${declared} bytes is over the limit of ${limit} bytes`, { connection: 'close' }));
      req.resume();
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    req.on('data', (chunk: Buffer) => {
      if (done) return;
      size += chunk.length;
      if (size > limit) {
        done = true;
        reject(new HttpError(413, `request body is over the limit of ${limit} bytes`, { connection: 'close' }));
        req.resume();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (!done) {
        done = true;
        resolve(Buffer.concat(chunks));
      }
    });
    req.on('error', (err) => {
      if (!done) {
        done = true;
        reject(err);
      }
    });
  });
