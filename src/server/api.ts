/**
 * The JSON API: one handler per route, each a plain function of the query. Every query takes
 * `host` (default: the server's host) and `at` (a position or ISO time; default: live).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { timingSafeEqual, createHash } from 'node:crypto';
import { canDmaAt, hex, verdictJson, type State } from '../../domain/index.js';
import { audit, auditJson, entriesAt, explain, fleetWhatIf, groupView, groupsJson, groupsView, plan, reacherJson, sentence, whatIf, whoCanReach, type Entry } from '../../projections/index.js';
import { GROUPING_RULES_NAMES, isGroupingRulesName } from '../../domain/index.js';
import type { HostHandle, HostRegistry } from './hosts.js';
import { mmioAnswer } from './p2p.js';
import { HttpError, baseHeaders, readBody, sendJson, toJson, MAX_BODY_BYTES } from './http.js';
import { asksForVerdict } from '../queries/index.js';
import { dmaQueryOf, dmaQueryText, reachQueryOf, type Params } from './params.js';
import { resetScopeRoute, resetsJson } from './reset.js';
import { sealRoute } from './seal.js';
import type { Sealer } from '../store/sealer.js';
import { faultsAnswer } from './faults.js';
import { deviceDetailJson, devicesJson, devicesTreeJson, domainsJson, groupsBriefJson, mappingsJson, summaryJson } from './views.js';

export interface ApiOptions {
  readonly registry: HostRegistry;
  /** Bearer token that enables POST /api/commands; without one the API is read-only. */
  readonly token?: string;
  readonly maxBodyBytes?: number;
  /** Seals of the hosts (the seal panel); without it the panel says that nothing seals. */
  readonly seals?: Sealer;
}

export interface ApiRequest {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly url: URL;
  readonly p: Params;
  /** Path parameters of the route (decoded). */
  readonly args: readonly string[];
  host(options?: { create?: boolean }): Promise<HostHandle>;
}

type Handler = (r: ApiRequest) => Promise<unknown>;

/**
 * An answer whose content (everything but `pos`) depends only on a few parts of the state. Its
 * text and ETag are kept per identity of those parts (immer keeps an untouched Map the same
 * object), so a slider dragged over mapping-only history neither rebuilds nor resends the tree:
 * the client's If-None-Match matches and the answer is a 304.
 */
class Tagged {
  constructor(
    readonly key: string,
    readonly pos: number,
    readonly build: () => object,
  ) {}
}

const ids = new WeakMap<object, number>();
let nextId = 0;
const idOf = (o: object): number => {
  let n = ids.get(o);
  if (n === undefined) ids.set(o, (n = ++nextId));
  return n;
};
const partsKey = (kind: string, host: string, s: State): string => `${kind}:${host}:${idOf(s.devices)}.${idOf(s.groups)}.${idOf(s.ctxs)}`;

/** Built answers by parts key (a few: the positions a slider visits share them). */
const built = new Map<string, { inner: string; tag: string }>();
const resolveTagged = (t: Tagged): { inner: string; tag: string } => {
  let hit = built.get(t.key);
  if (hit) {
    built.delete(t.key);
  } else {
    const inner = toJson(t.build());
    hit = { inner, tag: `W/"${createHash('sha1').update(inner).digest('base64url').slice(0, 22)}"` };
  }
  built.set(t.key, hit);
  while (built.size > 16) built.delete(built.keys().next().value!);
  return hit;
};

interface Route {
  readonly method: 'GET' | 'POST';
  readonly pattern: RegExp;
  readonly handler: Handler;
}

/** The state a query asks for, plus the position and time it resolved to. */
const stateOf = async (r: ApiRequest): Promise<{ h: HostHandle; s: State }> => {
  const h = await r.host();
  return { h, s: await h.stateAt(r.p.at()) };
};

const live = (h: HostHandle): { pos: number; at: string | null } => ({ pos: h.manager.state.pos, at: h.manager.state.at });

/** A log entry as the page shows it: one sentence, refusal and alert flags, the raw data. */
export const entryJson = (e: Entry, ctx: Parameters<typeof sentence>[1], alerts: readonly unknown[]): Record<string, unknown> => ({
  pos: e.pos,
  at: e.meta.at,
  type: e.type,
  actor: e.meta.actor ?? null,
  ...(e.meta.observed ? { observed: true } : {}),
  sentence: sentence(e, ctx),
  refused: e.type === 'CommandRejected',
  alerts,
  data: e.data,
});

/** Entries of the log with sentences: a window ending at `to`, optionally filtered (newest kept). */
const logRoute: Handler = async (r) => {
  const h = await r.host();
  const p = r.p;
  const latest = h.manager.state.pos;
  const atTo = p.at('to') ?? p.at();
  const to = atTo === undefined ? latest : h.manager.positionAt(atTo);
  const limit = p.int('limit', 200, 1, 5000);
  const q = p.str('q')?.toLowerCase();
  const only = p.str('only');
  if (only !== undefined && only !== 'problems') throw new HttpError(400, `only: expected "problems", got ${JSON.stringify(only.slice(0, 20))}`);
  const filtered = q !== undefined || only !== undefined;
  const fromArg = p.optInt('from', 0, Number.MAX_SAFE_INTEGER);
  const from = Math.max(1, fromArg ?? (filtered ? 1 : to - limit + 1));
  const ctx = await h.sentenceContext(to);
  const out: Record<string, unknown>[] = [];
  let matched = 0;
  const keep = (e: Entry, alerts: readonly unknown[]): void => {
    const row = entryJson(e, ctx, alerts);
    if (q !== undefined && !`${row.sentence as string} ${e.type} #${e.pos}`.toLowerCase().includes(q)) return;
    matched++;
    out.push(row);
    if (out.length > limit) out.shift();
  };
  if (only === 'problems') {
    // From the host's index of problem positions: no scan of the whole log.
    const positions = await h.problemPositions(from, to);
    const wanted = q === undefined ? positions.slice(-limit) : positions;
    if (q === undefined) matched = positions.length - wanted.length;
    for (const e of await entriesAt(h.manager.log, wanted)) keep(e, h.alertsAt(e.pos));
  } else {
    let seen = 0;
    for await (const e of h.manager.log.read(from, to)) {
      // A long scan lets other requests in now and then (the server is one thread).
      if (++seen % 4096 === 0) await new Promise((r) => setImmediate(r));
      keep(e, h.alertsAt(e.pos));
    }
  }
  return { host: h.host, from, to, live: live(h), matched, truncated: matched > out.length, entries: out };
};

const canDmaRoute = async (r: ApiRequest, withChain: boolean): Promise<unknown> => {
  const { h, s } = await stateOf(r);
  const p = r.p;
  const q = dmaQueryOf(p);
  const query = { device: q.device, iova: hex(q.iova), length: hex(q.length!), access: q.access, pasid: q.pasid ?? null, ...(q.translated ? { translated: true } : {}) };
  if (!withChain) return { host: h.host, pos: s.pos, at: s.at, query, ...verdictJson(canDmaAt(s, q)) };
  const x = await explain(s, h.manager.log, q);
  return {
    host: h.host,
    pos: s.pos,
    at: s.at,
    query,
    ...verdictJson(x.verdict!),
    summary: x.summary,
    membership: x.membership,
    chain: x.chain,
  };
};

const auditRoute: Handler = async (r) => {
  const h = await r.host();
  const p = r.p;
  const at = p.at();
  const to = at === undefined ? h.manager.state.pos : h.manager.positionAt(at);
  const limit = p.int('limit', 500, 1, 10_000);
  const device = p.optDevice();
  const group = p.optInt('group', 0, Number.MAX_SAFE_INTEGER);
  const ctx = p.str('ctx');
  const domain = p.str('domain');
  const uid = p.optInt('uid', 0, 0xffffffff);
  const since = p.time('since');
  const until = p.time('until');
  const rows = await audit(await h.stateAt(to), h.manager.log, {
    ...(device !== undefined ? { device } : {}),
    ...(group !== undefined ? { group } : {}),
    ...(ctx !== undefined ? { ctx } : {}),
    ...(domain !== undefined ? { domain } : {}),
    ...(uid !== undefined ? { uid } : {}),
    ...(since !== undefined ? { since } : {}),
    ...(until !== undefined ? { until } : {}),
    to,
  });
  const shown = rows.slice(-limit);
  return { host: h.host, pos: to, total: rows.length, truncated: rows.length > shown.length, rows: shown.map(auditJson) };
};

/** Constant-time comparison of the bearer token (hashes first, so lengths do not leak either). */
const tokenMatches = (header: string | undefined, token: string): boolean => {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  if (!m) return false;
  const a = createHash('sha256').update(m[1]!).digest();
  const b = createHash('sha256').update(token).digest();
  return timingSafeEqual(a, b);
};

const commandsRoute =
  (o: ApiOptions): Handler =>
  async (r) => {
    if (o.token === undefined) throw new HttpError(403, 'this server is read-only: start it with --token T to enable POST /api/commands');
    if (!tokenMatches(r.req.headers.authorization, o.token)) throw new HttpError(403, 'POST /api/commands needs the header "Authorization: Bearer <token>" with the token the server was started with');
    const type = (r.req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (type !== 'application/json') throw new HttpError(415, 'POST /api/commands takes application/json: one command object or an array of them');
    const body = await readBody(r.req, o.maxBodyBytes ?? MAX_BODY_BYTES);
    let parsed: unknown;
    try {
      parsed = JSON.parse(body.toString('utf8'));
    } catch (err) {
      throw new HttpError(400, `malformed JSON: ${(err as Error).message}`);
    }
    const commands = Array.isArray(parsed) ? parsed : [parsed];
    if (commands.length === 0) throw new HttpError(400, 'no commands: send one command object or a non-empty array');
    const h = await r.host({ create: true });
    const results = await h.exec(commands);
    const out = results.map((x, i) => (x.ok ? { line: i + 1, ok: true, pos: x.pos, events: x.events } : { line: i + 1, ok: false, status: x.status, message: x.message, pos: x.pos }));
    return { host: h.host, ok: results.every((x) => x.ok), pos: h.manager.state.pos, results: out };
  };

export const createApi = (o: ApiOptions): ((r: Omit<ApiRequest, 'args'>) => Promise<boolean>) => {
  const routes: Route[] = [
    {
      method: 'GET',
      pattern: /^\/api\/hosts$/,
      handler: async () => ({ hosts: await o.registry.hosts(), default: await o.registry.defaultHost(), writable: o.token !== undefined }),
    },
    {
      method: 'GET',
      pattern: /^\/api\/state$/,
      handler: async (r) => {
        const { h, s } = await stateOf(r);
        return { host: h.host, ...summaryJson(s), live: live(h), writable: o.token !== undefined };
      },
    },
    {
      method: 'GET',
      pattern: /^\/api\/groups$/,
      handler: async (r) => {
        const { h, s } = await stateOf(r);
        const brief = r.p.str('brief');
        if (brief !== undefined && brief !== '0' && brief !== '1') throw new HttpError(400, 'brief: expected 0 or 1');
        if (brief === '1') return new Tagged(partsKey('gb', h.host, s), s.pos, () => ({ host: h.host, ...groupsBriefJson(s) }));
        return new Tagged(partsKey('g', h.host, s), s.pos, () => ({ host: h.host, ...(groupsJson(groupsView(s)) as object) }));
      },
    },
    {
      method: 'GET',
      pattern: /^\/api\/fleet\/what-if$/,
      handler: async (r) => {
        const rules = r.p.str('rules');
        if (rules === undefined || !isGroupingRulesName(rules)) throw new HttpError(400, `rules: expected one of ${GROUPING_RULES_NAMES.join(', ')}`);
        const states: { host: string; state: State }[] = [];
        for (const { host } of await o.registry.hosts()) {
          const h = await o.registry.get(host);
          states.push({ host, state: h.manager.state });
        }
        return fleetWhatIf(states, rules, r.p.str('kernel') ?? null);
      },
    },
    {
      method: 'GET',
      pattern: /^\/api\/what-if$/,
      handler: async (r) => {
        const { h, s } = await stateOf(r);
        const rules = r.p.str('rules');
        if (rules === undefined || !isGroupingRulesName(rules)) throw new HttpError(400, `rules: expected one of ${GROUPING_RULES_NAMES.join(', ')}`);
        return { host: h.host, pos: s.pos, ...whatIf(s, rules, r.p.str('kernel') ?? null) };
      },
    },
    {
      method: 'GET',
      pattern: /^\/api\/groups\/([^/]+)$/,
      handler: async (r) => {
        const { h, s } = await stateOf(r);
        const raw = r.args[0]!.replace(/^group:/, '');
        const g = /^\d{1,15}$/.test(raw) ? groupView(s, Number(raw)) : null;
        if (!g) throw new HttpError(404, `no group ${JSON.stringify(r.args[0]!.slice(0, 40))} at position ${s.pos}`);
        const single = groupsJson({ boot: null, groups: [g], groupless: [] }) as { groups: unknown[] };
        return { host: h.host, pos: s.pos, ...(single.groups[0] as object) };
      },
    },
    {
      method: 'GET',
      pattern: /^\/api\/devices$/,
      handler: async (r) => {
        const { h, s } = await stateOf(r);
        const fields = r.p.str('fields');
        if (fields !== undefined && fields !== 'tree' && fields !== 'all') throw new HttpError(400, 'fields: expected tree or all');
        if (fields === 'tree') return new Tagged(`dt:${h.host}:${idOf(s.devices)}`, s.pos, () => ({ host: h.host, ...devicesTreeJson(s) }));
        return new Tagged(partsKey('d', h.host, s), s.pos, () => ({ host: h.host, ...devicesJson(s) }));
      },
    },
    {
      method: 'GET',
      pattern: /^\/api\/devices?\/([^/]+)$/,
      handler: async (r) => {
        const { h, s } = await stateOf(r);
        const id = r.args[0]!;
        const d = s.devices.get(id) ?? s.devices.get(id.toLowerCase());
        if (!d) throw new HttpError(404, `no device ${JSON.stringify(id.slice(0, 80))} at position ${s.pos}`);
        return { host: h.host, ...deviceDetailJson(s, d) };
      },
    },
    {
      method: 'GET',
      pattern: /^\/api\/domains$/,
      handler: async (r) => {
        const { h, s } = await stateOf(r);
        const defaults = r.p.str('defaults');
        if (defaults !== undefined && defaults !== '0' && defaults !== '1') throw new HttpError(400, 'defaults: expected 0 or 1');
        return { host: h.host, ...domainsJson(s, defaults !== '0') };
      },
    },
    {
      method: 'GET',
      pattern: /^\/api\/domains\/([^/]+)\/mappings$/,
      handler: async (r) => {
        const { h, s } = await stateOf(r);
        const dom = s.domains.get(r.args[0]!);
        if (!dom) throw new HttpError(404, `no domain ${JSON.stringify(r.args[0]!.slice(0, 80))} at position ${s.pos}`);
        const offset = r.p.int('offset', 0, 0, Number.MAX_SAFE_INTEGER);
        const limit = r.p.int('limit', 100, 1, 1000);
        return { host: h.host, ...mappingsJson(s, dom, offset, limit, r.p.optU64('iova')) };
      },
    },
    { method: 'GET', pattern: /^\/api\/can-dma$/, handler: (r) => canDmaRoute(r, true) },
    {
      method: 'GET',
      pattern: /^\/api\/who-can$/,
      handler: async (r) => {
        const { h, s } = await stateOf(r);
        const { pa, length, access } = reachQueryOf(r.p);
        const limit = r.p.int('limit', 1000, 1, 100_000);
        const rows = whoCanReach(s, { pa, length, access });
        return { host: h.host, pos: s.pos, pa: hex(pa), length: hex(length), total: rows.length, truncated: rows.length > limit, reachers: rows.slice(0, limit).map(reacherJson) };
      },
    },
    {
      method: 'GET',
      pattern: /^\/api\/explain$/,
      handler: async (r) => {
        if (asksForVerdict(dmaQueryText(r.p))) return canDmaRoute(r, true);
        const { h, s } = await stateOf(r);
        const x = await explain(s, h.manager.log, { device: r.p.device() });
        return { host: h.host, pos: s.pos, at: s.at, ...x };
      },
    },
    { method: 'GET', pattern: /^\/api\/audit$/, handler: auditRoute },
    {
      method: 'GET',
      pattern: /^\/api\/plan$/,
      handler: async (r) => {
        const { h, s } = await stateOf(r);
        const ctx = r.p.str('ctx');
        const uid = r.p.optInt('uid', 0, 0xffffffff);
        return { host: h.host, pos: s.pos, ...plan(s, { device: r.p.device(), ...(ctx !== undefined ? { ctx } : {}), ...(uid !== undefined ? { uid } : {}) }) };
      },
    },
    { method: 'GET', pattern: /^\/api\/log$/, handler: logRoute },
    { method: 'POST', pattern: /^\/api\/commands$/, handler: commandsRoute(o) },
    {
      method: 'GET',
      pattern: /^\/api\/resets$/,
      handler: async (r) => {
        const { h, s } = await stateOf(r);
        return { host: h.host, ...resetsJson(s) };
      },
    },
    {
      method: 'GET',
      pattern: /^\/api\/reset-scope$/,
      handler: async (r) => {
        const { h, s } = await stateOf(r);
        return { host: h.host, ...resetScopeRoute(s, r.p) };
      },
    },
    { method: 'GET', pattern: /^\/api\/seal$/, handler: sealRoute(o.seals) },
    {
      method: 'GET',
      pattern: /^\/api\/mmio$/,
      handler: async (r) => {
        const { h, s } = await stateOf(r);
        return { host: h.host, ...mmioAnswer(s, r.p) };
      },
    },
    {
      method: 'GET',
      pattern: /^\/api\/faults$/,
      handler: async (r) => {
        const { h, s } = await stateOf(r);
        return faultsAnswer(h, s);
      },
    },
  ];

  return async (r) => {
    const path = r.url.pathname;
    let allowed: string[] = [];
    for (const route of routes) {
      const m = route.pattern.exec(path);
      if (!m) continue;
      if (route.method !== r.req.method && !(route.method === 'GET' && r.req.method === 'HEAD')) {
        allowed.push(route.method);
        continue;
      }
      let args: string[];
      try {
        args = m.slice(1).map((a) => decodeURIComponent(a));
      } catch {
        throw new HttpError(400, 'malformed percent-encoding in the path');
      }
      const answer = await route.handler({ ...r, args });
      let text: string;
      let tag: string | undefined;
      if (answer instanceof Tagged) {
        const t = resolveTagged(answer);
        text = `{"pos":${answer.pos},${t.inner.slice(1)}`;
        tag = t.tag;
      } else {
        text = toJson(answer);
        tag = etagOf(text);
      }
      if (tag !== undefined && r.req.headers['if-none-match'] === tag) {
        r.res.writeHead(304, { ...baseHeaders(), etag: tag, 'cache-control': 'no-cache' });
        r.res.end();
      } else sendJson(r.res, 200, { raw: text }, tag === undefined ? {} : { etag: tag });
      return true;
    }
    allowed = [...new Set(allowed)];
    if (allowed.length > 0) throw new HttpError(405, `${r.req.method} is not allowed on ${path} (use ${allowed.join(', ')})`, { allow: allowed.join(', ') });
    return false;
  };
};

/** Weak ETag over a large body: a slider revisiting a position costs no transfer (304). */
const etagOf = (text: string): string | undefined => (text.length < 4096 ? undefined : `W/"${createHash('sha1').update(text).digest('base64url').slice(0, 22)}"`);
