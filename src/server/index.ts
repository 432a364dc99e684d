/**
 * `createServer`: the dashboard's HTTP server on node:http — the JSON API, the SSE event stream,
 * and the static page. Read-only unless started with a token; loopback only unless told
 * otherwise; every error is JSON `{error: {status, message}}` without a stack trace.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { FieldError } from '../../domain/index.js';
import type { EventStore } from '../store/types.js';
import type { Sealer } from '../store/sealer.js';
import { createApi } from './api.js';
import { createHostRegistry, type HostRegistry } from './hosts.js';
import { HttpError, sendError } from './http.js';
import { params } from './params.js';
import { resumePoint, streamEvents, type SseStats, type SseStream } from './sse.js';
import { createStaticFiles } from './static.js';

export { HttpError } from './http.js';

export interface ServerOptions {
  readonly store: EventStore;
  /** The log host shown when a request names none (default: "local" if present, else the first). */
  readonly host?: string;
  /** Enables POST /api/commands for requests with `Authorization: Bearer <token>`. */
  readonly token?: string;
  /** TCP port (default 7800; 0 picks a free one). */
  readonly port?: number;
  /** Address to listen on (default 127.0.0.1). */
  readonly bind?: string;
  /** Allow a non-loopback bind address (the dashboard has no TLS and no user accounts). */
  readonly bindAny?: boolean;
  /** Folder of the page (default: src/server/static). */
  readonly staticDir?: string;
  readonly heartbeatMs?: number;
  readonly retryMs?: number;
  readonly maxBodyBytes?: number;
  readonly snapshotEvery?: number;
  /** An event-stream client whose socket has not drained for this long is dropped with a reason (default 30 s). */
  readonly slowClientMs?: number;
  /** Where internal errors (with their stacks) go; never to the client. Default: stderr. */
  readonly log?: (line: string) => void;
  /** Seals for the seal panel (GET /api/seal); `serve --seal-every` also seals with it. */
  readonly seals?: Sealer;
}

export interface DashboardServer {
  /** http://address:port/ */
  readonly url: string;
  readonly port: number;
  readonly bind: string;
  readonly registry: HostRegistry;
  readonly server: Server;
  /** Event-stream clients open, dropped for being slow, and bytes waiting for their sockets. */
  readonly sse: SseStats;
  close(): Promise<void>;
}

export const isLoopback = (address: string): boolean => {
  const a = address.replace(/^\[|\]$/g, '').toLowerCase();
  return a === 'localhost' || a === '::1' || /^127(\.\d{1,3}){3}$/.test(a) || /^::ffff:127(\.\d{1,3}){3}$/.test(a);
};

/** Host header names a loopback server answers to (anything else smells of DNS rebinding). */
const loopbackHostHeader = (host: string | undefined): boolean => {
  if (host === undefined) return false;
  const name = host.startsWith('[') ? host.slice(0, host.indexOf(']') + 1) : host.replace(/:\d+$/, '');
  return isLoopback(name);
};

export const createServer = async (o: ServerOptions): Promise<DashboardServer> => {
  const bind = o.bind ?? '127.0.0.1';
  const loopback = isLoopback(bind);
  if (!loopback && !o.bindAny) {
    throw Object.assign(new Error(`refusing to listen on ${bind}: the dashboard is for this machine (no TLS, no accounts); pass --bind-any to expose it anyway`), { code: 'ENOTLOOPBACK' });
  }
  const log = o.log ?? ((line: string) => void process.stderr.write(`${line}\n`));
  const registry = createHostRegistry({ store: o.store, ...(o.host !== undefined ? { host: o.host } : {}), ...(o.snapshotEvery !== undefined ? { snapshotEvery: o.snapshotEvery } : {}) });
  const api = createApi({ registry, ...(o.token !== undefined ? { token: o.token } : {}), ...(o.maxBodyBytes !== undefined ? { maxBodyBytes: o.maxBodyBytes } : {}), ...(o.seals ? { seals: o.seals } : {}) });
  const files = createStaticFiles(o.staticDir);
  const streams = new Set<SseStream>();
  const sse: SseStats = { clients: 0, dropped: 0, buffered: () => [...streams].reduce((n, s) => n + s.buffered(), 0) };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const raw = req.url ?? '/';
    if (!raw.startsWith('/')) throw new HttpError(400, 'request target must be a path');
    if (loopback && !loopbackHostHeader(req.headers.host)) {
      throw new HttpError(403, `Host ${JSON.stringify(String(req.headers.host ?? '').slice(0, 80))} is not this loopback server (DNS rebinding protection); use http://127.0.0.1 or http://localhost`);
    }
    const url = new URL(`http://localhost${raw}`);
    const p = params(url.searchParams);
    const host = (options?: { create?: boolean }) => registry.get(p.str('host'), options);
    if (url.pathname === '/api/events') {
      if (req.method !== 'GET') throw new HttpError(405, `${req.method} is not allowed on /api/events (use GET)`, { allow: 'GET' });
      const after = resumePoint(req, p.str('after'));
      const h = await host();
      const s = streamEvents(req, res, h, after, {
        ...(o.heartbeatMs !== undefined ? { heartbeatMs: o.heartbeatMs } : {}),
        ...(o.retryMs !== undefined ? { retryMs: o.retryMs } : {}),
        ...(o.slowClientMs !== undefined ? { slowClientMs: o.slowClientMs } : {}),
        onDrop: () => void (sse.dropped += 1),
      });
      streams.add(s);
      sse.clients = streams.size;
      void s.done.then(() => {
        streams.delete(s);
        sse.clients = streams.size;
      });
      return;
    }
    if (url.pathname.startsWith('/api/')) {
      if (await api({ req, res, url, p, host })) return;
      throw new HttpError(404, `no API route ${url.pathname}`);
    }
    if (await files.serve(req, res, url.pathname)) return;
    throw new HttpError(404, `not found: ${url.pathname.slice(0, 200)}`);
  };

  const server = createHttpServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (err instanceof HttpError) return sendError(res, err.status, err.message, err.headers);
      if (err instanceof FieldError) return sendError(res, 400, err.message);
      const e = err as { code?: unknown; message?: unknown; stack?: unknown };
      log(`isogroup serve: internal error on ${req.method} ${req.url}: ${String(e?.stack ?? err)}`);
      // A store's user-facing errors (coded, one line) are safe to pass on; anything else is not.
      const safe = typeof e?.code === 'string' && /^E[A-Z]+$/.test(e.code) && typeof e.message === 'string' ? `${e.code}: ${e.message}` : 'internal error (see the server log)';
      sendError(res, 500, safe);
    });
  });
  // A client that sends its request slowly (slowloris) is cut off instead of holding a socket for ever.
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  // CONNECT (a proxy tunnel) would otherwise drop the socket without a word.
  server.on('connect', (_req, socket) => {
    const body = '{"error":{"status":405,"message":"CONNECT is not allowed: this is not a proxy"}}';
    socket.end(`HTTP/1.1 405 Method Not Allowed\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);
  });
  server.on('clientError', (_err, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{"error":{"status":400,"message":"malformed request"}}');
    else socket.destroy();
  });

  await new Promise<void>((resolve, reject) => {
    const fail = (err: Error): void => reject(err);
    server.once('error', fail);
    server.listen(o.port ?? 7800, bind, () => {
      server.off('error', fail);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const shown = bind.includes(':') ? `[${bind}]` : bind;
  let closing: Promise<void> | undefined;
  return {
    url: `http://${shown}:${port}/`,
    port,
    bind,
    registry,
    server,
    sse,
    close: () =>
      (closing ??= (async () => {
        const done = new Promise<void>((resolve) => server.close(() => resolve()));
        for (const s of streams) s.close();
        server.closeIdleConnections();
        setTimeout(() => server.closeAllConnections(), 1000).unref();
        await registry.close();
        await done;
      })()),
  };
};
