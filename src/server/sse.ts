/**
 * GET /api/events: the host's log as server-sent events. Each entry is one event whose `id:` is
 * its log position, so a browser that reconnects sends `Last-Event-ID` and gets exactly the
 * entries after it — replayed from the store, then live — without loss or duplicates.
 *
 * Why a cursor and not a queue of pushed events: the connection keeps only "the last position
 * sent" and, whenever the host's state moves, reads the store from there to the new position.
 * Catch-up and live are the same code path, a slow client simply reads bigger ranges (with
 * backpressure), and nothing can be sent twice or skipped.
 *
 * Memory per client is bounded: the pump writes at most one chunk (64 KiB) past what the socket
 * accepted, then waits for it to drain. A client that does not drain for `slowClientMs` is dropped
 * with a reason (an `event: drop` naming the last position written) instead of being waited for
 * without end; its browser reconnects with Last-Event-ID and loses nothing.
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
  /** A client whose socket has not drained for this long is dropped with a reason (default 30 s). */
  readonly slowClientMs?: number;
  /** Told when a slow client is dropped (the server counts them). */
  readonly onDrop?: (reason: string) => void;
}

/** Live figures of the server's event streams (for the reliability report and tests). */
export interface SseStats {
  /** Streams open now. */
  clients: number;
  /** Slow clients dropped since the server started. */
  dropped: number;
  /** Bytes written to open streams that their sockets have not taken yet. */
  readonly buffered: () => number;
}

export interface SseStream {
  /** Ends the stream (server shutdown). */
  close(): void;
  readonly done: Promise<void>;
  /** Bytes written but not yet taken by the socket. */
  buffered(): number;
  /** Why the server ended the stream (a slow client), if it did. */
  readonly dropped: () => string | undefined;
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

  const slowMs = o.slowClientMs ?? 30_000;
  let droppedFor: string | undefined;
  /** Resolves true when the socket drained (or closed), false after `slowMs` without. */
  const drained = (): Promise<boolean> =>
    new Promise((resolve) => {
      const timer = setTimeout(() => done(false), slowMs);
      timer.unref();
      function done(ok: boolean): void {
        clearTimeout(timer);
        res.off('drain', drainedOk);
        res.off('close', drainedOk);
        resolve(ok);
      }
      function drainedOk(): void {
        done(true);
      }
      res.on('drain', drainedOk);
      res.on('close', drainedOk);
    });
  const write = async (chunk: string): Promise<void> => {
    if (closed) return;
    if (!res.write(chunk) && !(await drained()) && !closed) {
      drop(`client too slow: nothing drained for ${slowMs} ms with ${res.writableLength} bytes pending; reconnect with Last-Event-ID to resume after the last event received`);
    }
  };
  /**
   * Ends a slow client's stream with a reason, and frees its socket if it has not taken the rest
   * (what was pending, the reason, the end) within another `slowMs`.
   */
  const drop = (reason: string): void => {
    droppedFor = reason;
    o.onDrop?.(reason);
    res.write(`event: drop\ndata: ${toJson({ reason })}\n\n`);
    stop();
    setTimeout(() => res.destroy(), slowMs).unref();
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
  return { close: stop, done, buffered: () => (res.writableEnded && res.destroyed ? 0 : res.writableLength), dropped: () => droppedFor };
};
