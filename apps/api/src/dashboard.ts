import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, extname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import type { NextFunction, Request, Response } from 'express';
import type { Logger } from '#platform';
import { isDashboardPage } from '#contracts';

/**
 * The dashboard's policy: scripts, styles, images and fonts only from this origin, requests only to this
 * origin (the API and its live stream), no inline script or style element, no plugins, no framing, no
 * form posts, no <base>. The built app has no inline code, so nothing needs a nonce or a hash.
 */
export const DASHBOARD_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "manifest-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
  "object-src 'none'",
].join('; ');

/** API responses are data, never documents: nothing may run or load from them. */
export const API_CSP = "default-src 'none'; frame-ancestors 'none'";

const COMMON_HEADERS: Record<string, string> = {
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'X-Frame-Options': 'DENY',
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Resource-Policy': 'same-origin',
  'Permissions-Policy': 'camera=(), microphone=(), geolocation=(), payment=(), usb=()',
};

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.woff2': 'font/woff2',
  '.map': 'application/json; charset=utf-8',
};
const COMPRESSIBLE = new Set(['.html', '.js', '.css', '.svg', '.json', '.txt', '.map']);

interface StaticFile {
  body: Buffer;
  gzip?: Buffer;
  type: string;
  etag: string;
  /** Hashed file names under assets/ never change: cache them for a year. */
  immutable: boolean;
}

/** Where the built dashboard is: CL_DASHBOARD_DIR, or apps/dashboard/dist beside the code (source or dist/). */
export function findDashboardDir(configured?: string): string | undefined {
  if (configured) return resolve(configured);
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [
    resolve(here, '../../dashboard/dist'), // apps/api/src → apps/dashboard/dist
    resolve(here, '../../../../apps/dashboard/dist'), // dist/apps/api/src → apps/dashboard/dist
    resolve(process.cwd(), 'apps/dashboard/dist'),
  ];
  return candidates.find((dir) => existsSync(join(dir, 'index.html')));
}

/**
 * The built dashboard, read into memory once at start (a few hundred KiB): requests are answered by exact
 * path lookup, so no request path ever reaches the file system.
 */
export class DashboardFiles {
  private constructor(
    readonly dir: string,
    private readonly files: Map<string, StaticFile>,
  ) {}

  static load(dir: string): DashboardFiles {
    const files = new Map<string, StaticFile>();
    const walk = (folder: string) => {
      for (const name of readdirSync(folder)) {
        const path = join(folder, name);
        if (statSync(path).isDirectory()) {
          walk(path);
          continue;
        }
        const extension = extname(name).toLowerCase();
        const type = TYPES[extension];
        if (!type) continue;
        const body = readFileSync(path);
        const key = '/' + relative(dir, path).split(sep).join('/');
        files.set(key, {
          body,
          gzip: COMPRESSIBLE.has(extension) && body.length > 1024 ? gzipSync(body, { level: 9 }) : undefined,
          type,
          etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`,
          immutable: key.startsWith('/assets/'),
        });
      }
    };
    walk(dir);
    if (!files.has('/index.html')) throw new Error(`${dir} has no index.html: build the dashboard`);
    return new DashboardFiles(dir, files);
  }

  get(path: string): StaticFile | undefined {
    return this.files.get(path);
  }

  get size(): number {
    return this.files.size;
  }
}

function isApiPath(path: string): boolean {
  return path === '/api' || path.startsWith('/api/');
}

/** Security headers on every response; API responses are never cached and never rendered as documents. */
export function securityHeaders(request: Request, response: Response, next: NextFunction): void {
  for (const [name, value] of Object.entries(COMMON_HEADERS)) response.setHeader(name, value);
  if (isApiPath(request.path)) {
    response.setHeader('Content-Security-Policy', API_CSP);
    response.setHeader('Cache-Control', 'no-store');
  }
  next();
}

/** The routes of the API (Nest answers unknown ones under it with its JSON 404). */
const API_ROUTES = '/api/v1/';

/**
 * Serves the dashboard at `/`: its files by exact path, and `index.html` at the dashboard's own pages
 * (such as /routes?status=failed), so a reload on any page works. Everything under `/api/v1` goes on to
 * the API; anything else is a JSON 404, whatever the method.
 */
export function dashboardHandler(files: DashboardFiles | undefined) {
  return (request: Request, response: Response, next: NextFunction): void => {
    if (request.path.startsWith(API_ROUTES)) return next();
    if (request.method !== 'GET' && request.method !== 'HEAD') return notFound(request, response);
    if (!files) {
      response
        .status(404)
        .type('text/plain')
        .send('The dashboard is not built here: run `npm run dashboard:build` and restart the API.\n');
      return;
    }
    // The built files, and the page at the dashboard's own paths; anything else (/metrics, /health,
    // /api/docs, /agents/x/y) is a 404 rather than a page that pretends to be it.
    const file =
      files.get(request.path) ?? (isDashboardPage(request.path) ? files.get('/index.html') : undefined);
    if (!file) return notFound(request, response);
    response.setHeader('Content-Security-Policy', DASHBOARD_CSP);
    response.setHeader('Content-Type', file.type);
    response.setHeader('ETag', file.etag);
    response.setHeader('Vary', 'Accept-Encoding');
    // index.html is revalidated every time (it names the current assets); assets are immutable.
    response.setHeader('Cache-Control', file.immutable ? 'public, max-age=31536000, immutable' : 'no-cache');
    if (request.headers['if-none-match'] === file.etag) {
      response.status(304).end();
      return;
    }
    const gzip = file.gzip && /\bgzip\b/.test(String(request.headers['accept-encoding'] ?? ''));
    const body = gzip ? file.gzip! : file.body;
    if (gzip) response.setHeader('Content-Encoding', 'gzip');
    response.setHeader('Content-Length', String(body.length));
    response.status(200);
    if (request.method === 'HEAD') response.end();
    else response.end(body);
  };
}

function notFound(request: Request, response: Response): void {
  response.status(404).json({ error: 'not_found', message: `nothing at ${request.path.slice(0, 200)}` });
}

/** Loads the built dashboard if there is one; the API runs without it (and says so at `/`). */
export function loadDashboard(configured: string | undefined, logger: Logger): DashboardFiles | undefined {
  const dir = findDashboardDir(configured);
  if (!dir) {
    logger.warn('the dashboard is not built; / answers 404 until it is (npm run dashboard:build)');
    return undefined;
  }
  try {
    const files = DashboardFiles.load(dir);
    logger.info('serving the dashboard', { dir, files: files.size });
    return files;
  } catch (error) {
    logger.error('the dashboard could not be loaded', { dir, error });
    return undefined;
  }
}
