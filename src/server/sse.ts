/**
 * GET /api/events: the host's log as server-sent events. Each entry is one event whose `id:` is
 * its log position, so a browser that reconnects sends `Last-Event-ID` and gets exactly the
 * entries after it — replayed from the store, then live — without loss or duplicates.
 *
 * Why a cursor and not a queue of pushed events: the connection keeps only "the last position
 * sent" and, whenever the host's state moves, reads the store from there to the new position.
 * Catch-up and live are the same code path, a slow client simply reads bigger ranges (with
 * backpressure), and nothing can be sent twice or skipped.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { HostHandle } from './hosts.js';
import { HttpError, baseHeaders, toJson } from './http.js';
import { entryJson } from './api.js';

export interface SseOptions {
  /** Comment line sent this often so proxies and the browser keep the connection (default 15 s). */
  readonly heartbeatMs?: number;
  /** Reconnect delay the browser should use (default 2 s). */
  readonly retryMs?: number;
}

export interface SseStream {
  /** Ends the stream (server shutdown). */
  close(): void;
  readonly done: Promise<void>;
}

const CHUNK = 64 * 1024;

/** Where to resume: the Last-Event-ID header (a reconnect) wins over `?after=` (the page's first connect). */
export const resumePoint = (req: IncomingMessage, after: string | undefined): number | undefined => {
  const header = req.headers['last-event-id'];
  const raw = (Array.isArray(header) ? header[0] : header)?.trim() || after;
  if (raw === undefined || raw === '') return undefined;
  if (!/^\d{1,15}$/.test(raw)) throw new HttpError(400, `Last-Event-ID / after: expected a log position, got ${JSON.stringify(raw.slice(0, 40))}`);
  return Number(raw);
};

export const streamEvents = (req: IncomingMessage, res: ServerResponse, h: HostHandle, resumeAfter: number | undefined, o: SseOptions = {}): SseStream => {
  const m = h.manager;
  // Without a resume point the stream starts live: entries after the current position.
  let sent = resumeAfter ?? m.state.pos;
  let closed = false;
  let running = false;
  let again = false;
  let finish!: () => void;
  const done = new Promise<void>((resolve) => (finish = resolve));

  res.writeHead(200, {
    ...baseHeaders(),
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache, no-transform',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
  });
  req.socket.setNoDelay(true);
  req.socket.setTimeout(0);
  res.write(`retry: ${o.retryMs ?? 2000}\n: isogroup ${h.host} from #${sent + 1}\n\n`);

  const drained = (): Promise<void> =>
    new Promise((resolve) => {
      const ok = (): void => {
        res.off('drain', ok);
        res.off('close', ok);
        resolve();
      };
      res.on('drain', ok);
      res.on('close', ok);
    });
  const write = async (chunk: string): Promise<void> => {
    if (closed) return;
    if (!res.write(chunk)) await drained();
  };

  const pump = async (): Promise<void> => {
    if (running) {
      again = true;
      return;
    }
    running = true;
    try {
      do {
        again = false;
        const to = m.state.pos;
        if (to <= sent || closed) continue;
        const ctx = await h.sentenceContext(to);
        let buf = '';
        for await (const e of m.log.read(sent + 1, to)) {
          if (closed) return;
          const data = { host: h.host, ...entryJson(e, ctx, h.alertsAt(e.pos)) };
          buf += `id: ${e.pos}\ndata: ${toJson(data)}\n\n`;
          sent = e.pos;
          if (buf.length >= CHUNK) {
            await write(buf);
            buf = '';
          }
        }
        if (buf) await write(buf);
      } while (again && !closed);
    } catch {
      stop();
    } finally {
      running = false;
    }
  };

  // Filled in last: stop() may run before (a completed state$ completes synchronously).
  const live: { subscription?: { unsubscribe(): void } } = {};
  const heartbeat = setInterval(() => void write(`: ping ${Date.now()}\n\n`), o.heartbeatMs ?? 15_000);
  heartbeat.unref();

  function stop(): void {
    if (closed) return;
    closed = true;
    clearInterval(heartbeat);
    live.subscription?.unsubscribe();
    if (!res.writableEnded) res.end();
    finish();
  }
  // The response's close is the connection's (the request's fires as soon as its body is read).
  res.on('close', stop);
  live.subscription = m.state$.subscribe({ next: () => void pump(), complete: () => stop() });
  if (closed) live.subscription.unsubscribe();
  return { close: stop, done };
};
