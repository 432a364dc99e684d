/**
 * Boot epochs: `HostBooted` starts a new epoch. A reboot ends every context, ownership, driver
 * binding, grant and domain, and the new kernel forms every group from scratch under the rule set
 * the boot names: the only time groups re-form. It is one event, so one position: a state at or
 * after it is in the new epoch (explain says a device was re-formed at boot #N).
 */
import type { Draft } from 'immer';
import { IntervalMap } from '../intervalMap.js';
import { isGroupingRulesName } from '../rules/index.js';
import type { Device } from '../state.js';
import { alert, type DraftHandler } from './common.js';
import { joinGroup } from './membership.js';
import { emptyIommufd } from '../iommufd/state.js';
import { aliasesOf, quirksFor } from '../rules/quirks.js';

export const hostBooted: DraftHandler<'HostBooted'> = (s, d, e) => {
  let rules = d.rules;
  if (!isGroupingRulesName(rules)) {
    alert(s, e, 'unknown-reference', `boot names unknown grouping rule set ${JSON.stringify(rules)}; groups form by linux-classic`, {});
    rules = 'linux-classic';
  }
  s.ctxs.clear();
  s.domains.clear();
  s.reach = IntervalMap.empty<string>() as never;
  s.groups.clear();
  s.iommufd = emptyIommufd() as never;
  s.boot = { n: (s.boot?.n ?? 0) + 1, kernel: d.kernel, rules, at: e.pos };
  const order: Draft<Device>[] = [];
  // The new kernel's quirk table: which entries each device's ids match from this boot on.
  s.quirkAliases = 0;
  for (const dev of s.devices.values()) {
    if (!dev.pci) continue;
    const quirks = quirksFor(dev, d.kernel);
    if (quirks.length > 0) dev.quirks = quirks;
    else if (dev.quirks !== undefined) delete dev.quirks;
    if (aliasesOf(dev as Device).length > 0) s.quirkAliases++;
  }
  for (const dev of s.devices.values()) {
    dev.group = null;
    dev.reason = null;
    dev.driver = null;
    dev.managedDma = false;
    dev.boundCtx = null;
    dev.grants = [];
    dev.endpointDomain = null;
    dev.groupedAt = e.pos;
    dev.driverAt = e.pos;
    dev.boundAt = 0;
    order.push(dev);
  }
  // Devices re-probe in the order they were added (parents before children).
  for (const dev of order) joinGroup(s, dev as Device, e);
};
