/** Test helpers for the dashboard server: a demo host on a store, raw HTTP, and an SSE reader. */
import { request, type IncomingHttpHeaders } from 'node:http';
import { DEMO_COMMANDS } from '../../src/demo.js';
import { createManager, type Manager } from '../../src/manager.js';
import type { EventStore } from '../../src/store/types.js';
import { T0, sequentialIds, steppingClock } from '../helpers.js';

/** A manager with a stepping clock (one second per command) and deterministic ids. */
export const writer = (store: EventStore, host = 'local', start = T0): Manager =>
  createManager({ store, host, clock: steppingClock(start), newId: sequentialIds(host) });

/** Writes the demo host command by command (each command its own time). */
export const writeDemo = async (store: EventStore, host = 'local'): Promise<Manager> => {
  const m = writer(store, host);
  await m.load();
  for (const c of DEMO_COMMANDS) await m.exec(c);
  return m;
};

export interface Reply {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly text: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  readonly json: any;
}

/** One HTTP request with the path sent exactly as given (no normalisation, unlike fetch). */
export const http = (base: string, method: string, path: string, o: { headers?: Record<string, string>; body?: string | Buffer } = {}): Promise<Reply> =>
  new Promise((resolve, reject) => {
    const u = new URL(base);
    const req = request({ host: u.hostname, port: u.port, method, path, headers: { ...(o.body !== undefined ? { 'content-length': String(Buffer.byteLength(o.body)) } : {}), ...o.headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: unknown;
        try {
          json = text ? JSON.parse(text) : undefined;
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
      });
    });
    req.on('error', reject);
    if (o.body !== undefined) req.write(o.body);
    req.end();
  });

export const get = (base: string, path: string, headers?: Record<string, string>): Promise<Reply> => http(base, 'GET', path, headers ? { headers } : {});

export interface SseEvent {
  readonly id: string | undefined;
  readonly data: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  readonly json: any;
}

export interface SseReader {
  readonly status: Promise<number>;
  readonly headers: Promise<IncomingHttpHeaders>;
  readonly events: SseEvent[];
  readonly comments: string[];
  readonly fields: string[];
  /** Resolves when `pred` holds (checked on every chunk), or rejects after `ms`. */
  until(pred: () => boolean, ms?: number): Promise<void>;
  close(): void;
}

/** A minimal EventSource for tests: parses `id:`, `data:`, `retry:` and comment lines. */
export const sse = (base: string, path: string, headers: Record<string, string> = {}): SseReader => {
  const events: SseEvent[] = [];
  const comments: string[] = [];
  const fields: string[] = [];
  const waiters = new Set<() => void>();
  let buf = '';
  let resolveStatus!: (n: number) => void;
  let resolveHeaders!: (h: IncomingHttpHeaders) => void;
  const status = new Promise<number>((r) => (resolveStatus = r));
  const hdrs = new Promise<IncomingHttpHeaders>((r) => (resolveHeaders = r));
  const u = new URL(base);
  const req = request({ host: u.hostname, port: u.port, path, headers: { accept: 'text/event-stream', ...headers } }, (res) => {
    resolveStatus(res.statusCode ?? 0);
    resolveHeaders(res.headers);
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      buf += chunk;
      let k: number;
      while ((k = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, k);
        buf = buf.slice(k + 2);
        let id: string | undefined;
        const data: string[] = [];
        for (const line of block.split('\n')) {
          if (line.startsWith(':')) comments.push(line.slice(1).trim());
          else if (line.startsWith('id:')) id = line.slice(3).trim();
          else if (line.startsWith('data:')) data.push(line.slice(5).trim());
          else if (line.length > 0) fields.push(line);
        }
        if (data.length > 0) {
          const text = data.join('\n');
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          events.push({ id, data: text, json });
        }
      }
      for (const w of [...waiters]) w();
    });
  });
  req.on('error', () => undefined);
  req.end();
  return {
    status,
    headers: hdrs,
    events,
    comments,
    fields,
    until: (pred, ms = 5000) =>
      new Promise<void>((resolve, reject) => {
        if (pred()) return resolve();
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`SSE: condition not met within ${ms} ms (events: ${events.map((e) => e.id).join(',')})`));
        }, ms);
        const check = (): void => {
          if (pred()) {
            clearTimeout(timer);
            waiters.delete(check);
            resolve();
          }
        };
        waiters.add(check);
      }),
    close: () => req.destroy(),
  };
};
