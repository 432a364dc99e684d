/**
 * Static files: the page (src/server/static) and the three vendor modules it imports through its
 * import map (preact, preact/hooks, htm), served straight from node_modules — no CDN, no build.
 *
 * Paths are decoded, resolved against the static folder and checked to stay inside it, so
 * `/../package.json` and its percent-encoded spellings are a 404. Vendor files are a fixed list.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, extname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { HttpError, baseHeaders } from './http.js';

const TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
};

export const contentTypeOf = (file: string): string => TYPES[extname(file).toLowerCase()] ?? 'application/octet-stream';

/**
 * The page's folder. From the sources it sits next to this module; from dist/ (tsc does not copy
 * it) it is found back in the package's src/server/static, three folders up from dist/src/server
 * and, in the bundled CLI (build-cli.mjs), from dist/cli/chunks alike.
 */
export const defaultStaticDir = (): string => {
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [join(here, 'static'), resolve(here, '../../../src/server/static')];
  return candidates.find((d) => existsSync(join(d, 'index.html'))) ?? candidates[0]!;
};

/** The vendor modules the import map names, resolved where Node would find them. */
const vendorFiles = (): Record<string, string> => {
  const require = createRequire(import.meta.url);
  const find = (spec: string): string => require.resolve(spec);
  return {
    '/vendor/preact.mjs': find('preact'),
    '/vendor/preact-hooks.mjs': find('preact/hooks'),
    '/vendor/htm.mjs': join(dirname(find('htm')), 'htm.mjs'),
  };
};

export interface StaticFiles {
  /** Serves the file for this path; false when the path is not a static file. */
  serve(req: IncomingMessage, res: ServerResponse, pathname: string): Promise<boolean>;
}

const sha256 = (text: string): string => createHash('sha256').update(text, 'utf8').digest('base64');

/**
 * Content-Security-Policy for the page: scripts only from this origin, plus the inline import
 * map by its hash; no connections elsewhere; no framing.
 */
const cspFor = (html: string): string => {
  const inline = [...html.matchAll(/<script type="importmap">([\s\S]*?)<\/script>/g)].map((m) => `'sha256-${sha256(m[1]!)}'`);
  return [
    "default-src 'self'",
    `script-src 'self' ${inline.join(' ')}`.trim(),
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
};

export const createStaticFiles = (dir: string = defaultStaticDir()): StaticFiles => {
  const root = resolve(dir);
  let vendor: Record<string, string> | undefined;
  return {
    async serve(req, res, pathname) {
      if (req.method !== 'GET' && req.method !== 'HEAD') return false;
      let file: string | undefined;
      if (pathname.startsWith('/vendor/')) {
        vendor ??= vendorFiles();
        file = vendor[pathname];
        if (!file) return false;
      } else {
        let decoded: string;
        try {
          decoded = decodeURIComponent(pathname);
        } catch {
          throw new HttpError(400, 'malformed percent-encoding in the path');
        }
        if (decoded.includes('\0')) throw new HttpError(400, 'NUL in the path');
        if (decoded === '/' || decoded === '/index.html') decoded = '/index.html';
        const full = resolve(root, `.${decoded}`);
        // The resolved file must stay inside the static folder, and no dot files.
        if (!full.startsWith(root + sep) || full.slice(root.length).split(sep).some((part) => part.startsWith('.'))) return false;
        file = full;
      }
      let info;
      try {
        info = await stat(file);
      } catch {
        return false;
      }
      if (!info.isFile()) return false;
      const body = await readFile(file);
      const headers: Record<string, string> = {
        ...baseHeaders(),
        'content-type': contentTypeOf(file),
        'content-length': String(body.length),
        'cache-control': 'no-cache',
        etag: `W/"${info.size.toString(16)}-${Math.floor(info.mtimeMs).toString(16)}"`,
      };
      if (file.endsWith('.html')) headers['content-security-policy'] = cspFor(body.toString('utf8'));
      if (req.headers['if-none-match'] === headers.etag) {
        res.writeHead(304, { etag: headers.etag!, 'cache-control': 'no-cache' });
        res.end();
        return true;
      }
      res.writeHead(200, headers);
      res.end(req.method === 'HEAD' ? undefined : body);
      return true;
    },
  };
};
