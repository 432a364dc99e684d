/**
 * Refused commands: which personality's statuses a refusal answers in, the refusal of a command
 * that does not parse, and the CommandRejected event that records either in the log.
 */
import type { FieldError } from '../encoding.js';
import type { DomainEvent } from '../events.js';
import { personalityOf, type PersonalityStrategy, type Status } from '../personality/index.js';
import type { State } from '../state.js';
import type { Decision } from './types.js';

/** Commands that touch a domain answer in their personality's codes; the others in errno names. */
const DOMAIN_COMMANDS: ReadonlySet<unknown> = new Set(['domain.alloc', 'domain.free', 'device.attach', 'device.detach', 'map', 'unmap']);

/** The fields that name what a command addresses, parsed or not. */
interface Addressed {
  readonly type?: unknown;
  readonly device?: unknown;
  readonly domain?: unknown;
  readonly iommu?: unknown;
}

/**
 * The personality a command is addressed to: the named device's IOMMU, else the domain's, else the
 * IOMMU the command names. The one choice for both what decides attach/detach/map/unmap and whose
 * codes a refusal answers in; it works on raw input too, so a command that does not parse is refused
 * in the same codes. (A device behind no IOMMU attached to a virtio-iommu domain is therefore the
 * virtio-iommu's to refuse — S_NOENT, as QEMU answers a request for an endpoint it does not manage.)
 */
export const addressedPersonality = (state: State, c: Addressed): PersonalityStrategy => {
  if (!DOMAIN_COMMANDS.has(c.type)) return personalityOf(null);
  const byIommu = (id: unknown): PersonalityStrategy => personalityOf(typeof id === 'string' ? state.iommus.get(id) : undefined);
  if (typeof c.device === 'string') {
    const d = state.devices.get(c.device.toLowerCase()) ?? state.devices.get(c.device);
    if (d?.iommu) return byIommu(d.iommu);
  }
  if (typeof c.domain === 'string') {
    const dom = state.domains.get(c.domain);
    if (dom) return byIommu(dom.iommu);
  }
  return byIommu(c.iommu);
};

/** The refusal of input that is not a command: EINVAL naming the field, in the addressed personality's codes. */
export const rejectUnparsed = (state: State, raw: unknown, err: FieldError): Decision => {
  const fields = (typeof raw === 'object' && raw !== null ? raw : {}) as Addressed;
  return { ok: false, command: null, status: addressedPersonality(state, fields).status('EINVAL'), message: err.message, events: [], state };
};

const UNREADABLE = Symbol.for('isogroup.unreadableInput');

/** Input that never became a value (a line that is not JSON, or not text): only why is known. */
export interface UnreadableInput {
  readonly [UNREADABLE]: true;
  readonly reason: string;
}

/** Marks input that could not be read; deciding it refuses with `reason` as the message. */
export const unreadable = (reason: string): UnreadableInput => ({ [UNREADABLE]: true, reason });

export const isUnreadable = (raw: unknown): raw is UnreadableInput => typeof raw === 'object' && raw !== null && (raw as Partial<UnreadableInput>)[UNREADABLE] === true;

/** The refusal of unreadable input: EINVAL with the reader's own reason. */
export const rejectUnreadable = (state: State, input: UnreadableInput): Decision => ({ ok: false, command: null, status: 'EINVAL', message: input.reason, events: [], state });

/** JSON-safe copy of the input as given (bigints as hex), bounded: it is recorded in the log. */
const commandJson = (raw: unknown): Record<string, unknown> => {
  if (isUnreadable(raw)) return { value: raw.reason.slice(0, 512) };
  const big = (_k: string, v: unknown): unknown => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v);
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    const value = typeof raw === 'string' ? raw.slice(0, 512) : typeof raw === 'bigint' ? big('', raw) : Array.isArray(raw) ? '[array]' : (raw ?? null);
    return { value: value as never };
  }
  let text: string;
  try {
    text = JSON.stringify(raw, big);
  } catch {
    // Absurd nesting or a cycle: keep what identifies the command, not the whole value.
    text = '';
  }
  const type = (raw as { type?: unknown }).type;
  return text === '' || text.length > 8192 ? { type: typeof type === 'string' ? type.slice(0, 64) : null, truncated: true } : (JSON.parse(text) as Record<string, unknown>);
};

/** The event that records a refusal: the input as given, the status and the message. */
export const rejectionEvent = (raw: unknown, status: Status, message: string): DomainEvent => ({
  type: 'CommandRejected',
  data: { command: commandJson(raw), status, message },
});
