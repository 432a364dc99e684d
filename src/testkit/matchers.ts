/**
 * jest matchers over a device of a simulated host: the subject is `{host, device}` — what
 * `host.device(id)` returns, and what every builder handle is — so a test reads
 *
 *   expect(host.device('0000:03:00.1')).toAllowDma({ iova: 0x1000n, access: 'w' });
 *   expect(nic).toShareGroupWith(nicAudio);
 *
 * Matchers are synchronous (the host is) and their failure messages carry the explanation chain:
 * the log entries that made the answer what it is, one sentence each (see explain.ts).
 */
import type { ExpectationResult, MatcherContext } from 'expect';
import type { DmaReason, DmaVerdict } from '../../domain/index.js';
import type { Address, DeviceSubject, Host } from './host.js';
import { chainOf, renderChain } from './explain.js';

export interface DmaExpectation {
  readonly iova: Address;
  readonly access: 'r' | 'w';
  readonly length?: Address;
  readonly pasid?: number;
}

const big = (v: Address): bigint => (typeof v === 'bigint' ? v : BigInt(v));
const hx = (n: bigint): string => `0x${n.toString(16)}`;

const subjectOf = (actual: unknown, matcher: string): DeviceSubject => {
  const a = actual as Partial<DeviceSubject> | null;
  if (typeof a === 'object' && a !== null && typeof a.device === 'string' && typeof a.host === 'object' && a.host !== null && 'state' in a.host) {
    return { host: a.host as Host, device: a.device.toLowerCase() };
  }
  throw new Error(`${matcher}: expected a device of a test host, e.g. expect(host.device('0000:03:00.1')) or a builder handle; got ${typeof actual}`);
};

const deviceOf = (other: unknown): string => {
  if (typeof other === 'string') return other.toLowerCase();
  const o = other as Partial<DeviceSubject> | null;
  if (typeof o === 'object' && o !== null && typeof o.device === 'string') return o.device.toLowerCase();
  throw new Error(`expected a device id or a device subject, got ${typeof other}`);
};

const queryOf = (q: DmaExpectation | undefined, matcher: string): { iova: bigint; access: 'r' | 'w'; length?: bigint; pasid?: number } => {
  if (!q || (q.access !== 'r' && q.access !== 'w') || q.iova === undefined) {
    throw new Error(`${matcher}: expected a query {iova, access: 'r' | 'w', length?, pasid?}`);
  }
  return { iova: big(q.iova), access: q.access, ...(q.length !== undefined ? { length: big(q.length) } : {}), ...(q.pasid !== undefined ? { pasid: q.pasid } : {}) };
};

const describeQuery = (q: { iova: bigint; access: 'r' | 'w'; length?: bigint; pasid?: number }): string =>
  `${q.access === 'w' ? 'write' : 'read'} of ${hx(q.iova)}${q.length !== undefined ? ` (+${hx(q.length)})` : ''}${q.pasid !== undefined ? ` at pasid ${q.pasid}` : ''}`;

const describeVerdict = (v: DmaVerdict): string => {
  const parts = [`${v.allowed ? 'allowed' : 'denied'} (${v.reason})`];
  if (v.group !== null) parts.push(`group ${v.group}`);
  if (v.owner) parts.push(`owned by ctx ${v.owner}${v.vm ? ` (VM ${v.vm})` : ''}`);
  if (v.domain) parts.push(`domain ${v.domain}`);
  if (v.viaGroup) parts.push(`riding the group's attachment through ${v.viaGroup.join(', ')}`);
  if (v.segments.length > 0 && v.allowed) parts.push(`pa ${v.segments.map((s) => hx(s.pa.start)).join(', ')}`);
  if (v.unsafe) parts.push('UNTRANSLATED');
  return parts.join(', ');
};

const dmaMatcher = (ctx: MatcherContext, name: string, subject: DeviceSubject, q: ReturnType<typeof queryOf>, want: boolean, reason?: string): ExpectationResult => {
  const { host, device } = subject;
  const c = chainOf(host.state, host.log, device, q);
  const v = c.verdict!;
  const pass = v.allowed === want && (reason === undefined || v.reason === reason);
  const expected = want ? 'allowed' : `denied${reason ? ` (${reason})` : ''}`;
  return {
    pass,
    message: () =>
      `${ctx.utils.matcherHint(name, device, reason ? `'${reason}', query` : 'query', { isNot: ctx.isNot })}\n\n` +
      `${device} ${describeQuery(q)} is ${describeVerdict(v)}; expected ${ctx.isNot ? 'anything but ' : ''}${expected}.\n\n` +
      `${c.membership}\n\nWhy (log):\n${renderChain(c)}`,
  };
};

function toAllowDma(this: MatcherContext, actual: unknown, query: DmaExpectation): ExpectationResult {
  return dmaMatcher(this, 'toAllowDma', subjectOf(actual, 'toAllowDma'), queryOf(query, 'toAllowDma'), true);
}

/** `toDenyDma(query)` or `toDenyDma(reason, query)`: denied, and when given, for that reason. */
function toDenyDma(this: MatcherContext, actual: unknown, reasonOrQuery: DmaReason | DmaExpectation, query?: DmaExpectation): ExpectationResult {
  const reason = typeof reasonOrQuery === 'string' ? reasonOrQuery : undefined;
  const q = typeof reasonOrQuery === 'string' ? query : reasonOrQuery;
  return dmaMatcher(this, 'toDenyDma', subjectOf(actual, 'toDenyDma'), queryOf(q, 'toDenyDma'), false, reason);
}

function toShareGroupWith(this: MatcherContext, actual: unknown, other: string | DeviceSubject): ExpectationResult {
  const { host, device } = subjectOf(actual, 'toShareGroupWith');
  const peer = deviceOf(other);
  const a = host.state.devices.get(device);
  const b = host.state.devices.get(peer);
  const pass = a !== undefined && b !== undefined && a.group !== null && a.group === b.group;
  return {
    pass,
    message: () => {
      const ca = chainOf(host.state, host.log, device);
      const cb = chainOf(host.state, host.log, peer);
      return (
        `${this.utils.matcherHint('toShareGroupWith', device, peer, { isNot: this.isNot })}\n\n` +
        `${device} is in ${a?.group != null ? `group ${a.group}` : 'no group'}, ${peer} in ${b?.group != null ? `group ${b.group}` : 'no group'}` +
        `${this.isNot ? ' (expected different groups)' : ''}.\n\n` +
        `${ca.membership}\n${renderChain(ca)}\n\n${cb.membership}\n${renderChain(cb)}`
      );
    },
  };
}

function toBeViable(this: MatcherContext, actual: unknown): ExpectationResult {
  const { host, device } = subjectOf(actual, 'toBeViable');
  const view = host.groupOf(device);
  const pass = view !== null && view.viable;
  return {
    pass,
    message: () => {
      const c = chainOf(host.state, host.log, device);
      const why =
        view === null
          ? `${device} has no group, so it can never be given to a user`
          : view.viable
            ? `group ${view.id} is viable${view.owner ? ` (owned by ctx ${view.owner})` : ' (no kernel driver uses its DMA API)'}`
            : `group ${view.id} is not viable: ${view.blockers.map((b) => `${b.device} uses ${b.driver}`).join(', ')}`;
      return `${this.utils.matcherHint('toBeViable', device, '', { isNot: this.isNot })}\n\n${why}.\n\n${c.membership}\n\nWhy (log):\n${renderChain(c)}`;
    },
  };
}

/** `toBeOwnedBy(ctx)`: the device's group is owned by that ctx (`null`: owned by nobody). */
function toBeOwnedBy(this: MatcherContext, actual: unknown, ctx: string | null): ExpectationResult {
  const { host, device } = subjectOf(actual, 'toBeOwnedBy');
  const view = host.groupOf(device);
  const owner = view?.owner ?? null;
  const pass = view !== null && owner === ctx;
  return {
    pass,
    message: () => {
      const c = chainOf(host.state, host.log, device);
      const now = view === null ? `${device} has no group` : owner ? `group ${view.id} is owned by ctx ${owner} (via ${view.claimPath === 'group' ? 'group.claim' : 'device.bind'})` : `group ${view.id} is owned by no context`;
      return `${this.utils.matcherHint('toBeOwnedBy', device, String(ctx), { isNot: this.isNot })}\n\n${now}.\n\n${c.membership}\n\nWhy (log):\n${renderChain(c)}`;
    },
  };
}

/** The matchers, for `expect.extend(matchers)`. */
export const matchers = { toAllowDma, toDenyDma, toShareGroupWith, toBeViable, toBeOwnedBy };

/** Installs the matchers: `installMatchers(expect)` with the `expect` of `@jest/globals` (or the global one). */
export const installMatchers = (expect: { extend(m: typeof matchers): void }): void => {
  expect.extend(matchers);
};

declare module 'expect' {
  // Merges into jest's own Matchers interface (jest ≥ 30 / `expect`), so the matchers type-check
  // on the `expect` of `@jest/globals`. The type parameters must repeat jest's declaration.
  // eslint-disable-next-line @typescript-eslint/no-unused-vars
  interface Matchers<R extends void | Promise<void>, T = unknown> {
    /** The device can make this access (a can-dma verdict with `allowed`, docs/model.md#verdicts). */
    toAllowDma(query: DmaExpectation): R;
    /** The device cannot make this access; with a reason, for that reason (`unmapped`, `blocked`, …). */
    toDenyDma(query: DmaExpectation): R;
    toDenyDma(reason: DmaReason, query: DmaExpectation): R;
    /** Both devices are in the same IOMMU group (no isolation between them). */
    toShareGroupWith(other: string | DeviceSubject): R;
    /** The device's group is viable: no kernel driver uses its DMA API (or it is already owned). */
    toBeViable(): R;
    /** The device's group is owned by this ctx (null: by nobody). */
    toBeOwnedBy(ctx: string | null): R;
  }
}
