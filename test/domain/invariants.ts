/**
 * SPEC §9 invariants over a State. Accepted commands never break them (observed logs may, and
 * then carry alerts). `invariantViolations` lists every broken rule as a sentence; `checkInvariants`
 * throws with that list, so it works inside plain tests and fast-check properties alike.
 *
 * Besides the six rules of §9 it checks the bookkeeping they rest on (member lists agree with
 * device records, `kernelUsers` counts the bound non-managed drivers, domain user lists agree with
 * group attachments, the PA reverse index holds one entry per mapping, owners are open contexts).
 */
import { blockingRegions } from '../../domain/reserved.js';
import type { Domain, Group, State } from '../../domain/state.js';

const hx = (n: bigint): string => `0x${n.toString(16)}`;

export const invariantViolations = (s: State): string[] => {
  const out: string[] = [];
  const bad = (rule: string, msg: string): void => {
    out.push(`§9.${rule}: ${msg}`);
  };

  // 1. Every device under an IOMMU is in exactly one group; groups are disjoint.
  for (const d of s.devices.values()) {
    if (d.iommu !== null && d.pci?.kind !== 'host-bridge' && d.group === null) bad('1', `${d.id} is under IOMMU ${d.iommu} but has no group`);
    if (d.pci?.kind === 'host-bridge' && d.group !== null) bad('1', `host bridge ${d.id} is in group ${d.group}`);
    if (d.group !== null) {
      const g = s.groups.get(d.group);
      if (!g) bad('1', `${d.id} names group ${d.group}, which is not live`);
      else if (!g.members.includes(d.id)) bad('1', `${d.id} says group ${d.group} but is not among its members`);
    }
  }
  const memberOf = new Map<string, number>();
  for (const [id, g] of s.groups) {
    // SPEC §5.4: only a group held through group.claim outlives its devices.
    if (g.members.length === 0 && !(g.claimPath === 'group' && g.owner !== null)) bad('1', `group ${id} is live but empty`);
    for (const m of g.members) {
      const prev = memberOf.get(m);
      if (prev !== undefined) bad('1', `${m} is a member of groups ${prev} and ${id}`);
      memberOf.set(m, id);
      const d = s.devices.get(m);
      if (!d) bad('1', `group ${id} lists unknown device ${m}`);
      else if (d.group !== id) bad('1', `group ${id} lists ${m}, which says group ${d.group}`);
    }
  }

  // 2. No device of a user-owned group is bound to a non-managed kernel driver.
  for (const g of s.groups.values()) {
    const kernel = g.members.filter((m) => {
      const d = s.devices.get(m);
      return d !== undefined && d.driver !== null && !d.managedDma;
    });
    if (g.owner !== null && kernel.length > 0) bad('2', `group ${g.id} is owned by ctx ${g.owner} but ${kernel.join(', ')} use kernel drivers`);
    if (g.kernelUsers !== kernel.length) bad('2', `group ${g.id} counts ${g.kernelUsers} kernel users but ${kernel.length} members have non-managed drivers`);
  }

  // 3. All devices of a group share one domain per PASID (linux: group-level attachment).
  for (const g of s.groups.values()) {
    for (const [pasid, att] of g.attachments) {
      const dom = s.domains.get(att.domain);
      if (!dom) {
        bad('3', `group ${g.id} is attached at pasid ${pasid} to unknown domain ${att.domain}`);
        continue;
      }
      if (att.devices.length === 0) bad('3', `group ${g.id} has an empty attachment at pasid ${pasid}`);
      for (const dev of att.devices) {
        if (!g.members.includes(dev)) bad('3', `group ${g.id} attachment at pasid ${pasid} lists non-member ${dev}`);
        if (!(dom.users.get(dev) ?? []).includes(pasid)) bad('3', `${dev} is attached to ${dom.id} at pasid ${pasid} but the domain does not list it`);
      }
    }
  }
  for (const dom of s.domains.values()) {
    const virtio = s.iommus.get(dom.iommu)?.personality === 'virtio';
    for (const [devId, pasids] of dom.users) {
      const dev = s.devices.get(devId);
      if (!dev) {
        bad('3', `domain ${dom.id} lists unknown device ${devId}`);
        continue;
      }
      if (virtio) {
        if (dev.endpointDomain !== dom.id) bad('3', `virtio domain ${dom.id} lists ${devId}, whose endpoint domain is ${dev.endpointDomain}`);
        continue;
      }
      const g = dev.group === null ? undefined : s.groups.get(dev.group);
      for (const p of pasids) {
        const att = g?.attachments.get(p);
        if (!att || att.domain !== dom.id || !att.devices.includes(devId)) {
          bad('3', `${devId} is a user of ${dom.id} at pasid ${p} but its group is attached to ${att?.domain ?? 'nothing'} there`);
        }
      }
    }
  }
  for (const d of s.devices.values()) {
    if (d.endpointDomain !== null && !s.domains.get(d.endpointDomain)?.users.has(d.id)) bad('3', `${d.id}'s endpoint domain ${d.endpointDomain} does not list it`);
  }

  // 4. No two mappings of a domain overlap; no mapping overlaps a reserved region of a device
  //    attached to that domain (nor of its IOMMU; direct-relaxable never counts).
  let mappings = 0;
  for (const dom of s.domains.values()) {
    let prevLast: bigint | null = null;
    let prevStart = 0n;
    for (const m of dom.mappings) {
      mappings++;
      if (m.last < m.start) bad('4', `domain ${dom.id} holds an inverted mapping ${hx(m.start)}-${hx(m.last)}`);
      if (prevLast !== null && m.start <= prevLast) bad('4', `domain ${dom.id}: mapping ${hx(m.start)}-${hx(m.last)} overlaps ${hx(prevStart)}-${hx(prevLast)}`);
      prevStart = m.start;
      prevLast = m.last;
    }
    for (const r of blockingRegions(s, dom as Domain)) {
      const hit = dom.mappings.overlapping(r.start, r.last, 1)[0];
      if (hit) bad('4', `domain ${dom.id}: mapping ${hx(hit.start)}-${hx(hit.last)} overlaps the ${r.kind} region ${hx(r.start)}-${hx(r.last)}`);
    }
  }
  if (s.reach.size !== mappings) bad('4', `the PA index holds ${s.reach.size} entries for ${mappings} mappings`);

  // 5. A device with no group is never bound to a ctx; an owned group's domain is blocked or a
  //    domain of its owner (and an unowned group only ever reaches kernel domains).
  for (const d of s.devices.values()) {
    if (d.boundCtx === null) continue;
    if (d.group === null) {
      bad('5', `${d.id} has no group but is bound to ctx ${d.boundCtx}`);
      continue;
    }
    const owner = s.groups.get(d.group)?.owner ?? null;
    if (owner !== d.boundCtx) bad('5', `${d.id} is bound to ctx ${d.boundCtx} but its group ${d.group} is owned by ${owner ?? 'nobody'}`);
  }
  for (const g of s.groups.values()) {
    for (const [pasid, att] of g.attachments) {
      const ctx = s.domains.get(att.domain)?.ctx ?? null;
      if (ctx !== g.owner) bad('5', `group ${g.id} (owner ${g.owner ?? 'none'}) is attached at pasid ${pasid} to ${att.domain} of ${ctx ?? 'the kernel'}`);
    }
    if (g.owner !== null && !s.ctxs.get(g.owner)?.open) bad('5', `group ${g.id} is owned by ${g.owner}, which is not an open context`);
  }
  for (const dom of s.domains.values()) {
    if (dom.ctx !== null && !s.ctxs.get(dom.ctx)?.open) bad('5', `domain ${dom.id} belongs to ${dom.ctx}, which is not an open context`);
  }

  // 6. Live group ids are unique; ownerRefs is 1 for a group.claim and the number of
  //    device.bind-bound devices otherwise.
  for (const [id, g] of s.groups) {
    if (g.id !== id) bad('6', `group stored under id ${id} says it is ${g.id}`);
    checkRefs(s, g, bad);
  }
  return out;
};

const checkRefs = (s: State, g: Group, bad: (rule: string, msg: string) => void): void => {
  const bound = g.members.filter((m) => s.devices.get(m)?.boundCtx != null);
  if (g.owner === null) {
    if (g.ownerRefs !== 0 || g.claimPath !== null) bad('6', `unowned group ${g.id} has ownerRefs ${g.ownerRefs} and claimPath ${g.claimPath}`);
    return;
  }
  if (g.claimPath === 'group') {
    if (g.ownerRefs !== 1) bad('6', `group ${g.id} claimed through group.claim has ownerRefs ${g.ownerRefs}`);
    if (bound.length > 0) bad('6', `group ${g.id} is claimed through group.claim but ${bound.join(', ')} are device.bind-bound`);
  } else if (g.claimPath === 'device') {
    if (g.ownerRefs !== bound.length) bad('6', `group ${g.id} has ownerRefs ${g.ownerRefs} but ${bound.length} device.bind-bound members`);
  } else bad('6', `owned group ${g.id} has no claim path`);
};

export const checkInvariants = (s: State): void => {
  const v = invariantViolations(s);
  if (v.length > 0) throw new Error(`invariants broken at pos ${s.pos}:\n  ${v.join('\n  ')}`);
};
