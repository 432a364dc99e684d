/**
 * Deciders shared by both personalities for domains and the DMA probe (SPEC §6 rules 7–8, §8):
 * the checks every domain.alloc/free passes before its personality has a say, and `dma`.
 */
import { TWO_POW_64, hex } from '../encoding.js';
import { canDmaAt } from '../dma.js';
import { personalityOf } from '../personality/index.js';
import { DEFAULT_DOMAIN_PREFIX } from '../default-domain.js';
import { checkCtx, checkDomainOwner, getDevice, getDomain, refuse, type Cmd, type Working } from './common.js';
import { checkHwptFree, emitPageFault } from './iommufd.js';

export const decideDomainAlloc = (w: Working, c: Cmd<'domain.alloc'>): void => {
  const s = w.state;
  if (c.ctx === null && c.actor.uid !== 0) refuse('EACCES', 'ctx: a kernel domain (no ctx) needs uid 0');
  if (c.ctx !== null) checkCtx(s, c.ctx, c);
  if (c.domain.startsWith(DEFAULT_DOMAIN_PREFIX)) refuse('EINVAL', `domain: ids starting with "${DEFAULT_DOMAIN_PREFIX}" name kernel default domains`);
  if (s.domains.has(c.domain)) refuse('EEXIST', `domain: ${c.domain} already exists`);
  const iommu = s.iommus.get(c.iommu) ?? refuse('ENODEV', `iommu: unknown IOMMU ${c.iommu}`);
  personalityOf(iommu).allocDomain(w, c, iommu);
};

export const decideDomainFree = (w: Working, c: Cmd<'domain.free'>): void => {
  const s = w.state;
  const dom = getDomain(s, c.domain);
  if (dom.defaultOf !== null) refuse('EBUSY', `domain: ${dom.id} is the default domain of group ${dom.defaultOf}`);
  if (dom.implicit) refuse('S_UNSUPP', `domain: virtio domain ${dom.id} dies with its last endpoint; detach its endpoints`);
  checkDomainOwner(s, dom, c);
  if (dom.users.size > 0) refuse('EBUSY', `domain: ${dom.id} is attached to ${[...dom.users.keys()].join(', ')}`);
  checkHwptFree(s, dom);
  w.emit({ type: 'DomainFreed', data: { domain: dom.id } });
};

export const decideDma = (w: Working, c: Cmd<'dma'>): void => {
  const s = w.state;
  getDevice(s, c.device);
  if (c.length === 0n) refuse('EINVAL', 'length: must not be 0');
  if (c.iova + c.length > TWO_POW_64) refuse('EOVERFLOW', `iova + length overflows 2^64`);
  const v = canDmaAt(s, { device: c.device, iova: c.iova, length: c.length, access: c.access, pasid: c.pasid });
  w.emit({
    type: 'DmaChecked',
    data: { device: c.device, iova: hex(c.iova), length: hex(c.length), access: c.access, pasid: c.pasid, allowed: v.allowed, reason: v.reason, domain: v.domain },
  });
  if (!v.allowed && v.fault) {
    w.emit({
      type: 'FaultRecorded',
      data: { device: c.device, iova: hex(c.iova), access: c.access, pasid: c.pasid, reason: v.fault.reason, flags: [...v.fault.flags], domain: v.domain, source: 'dma' },
    });
  }
  emitPageFault(w, c, v);
};
