/**
 * A large synthetic host for the dashboard's responsiveness measurement: about 5,000 PCI devices
 * under several PCI segments (root ports → switches → multifunction endpoints, half of the
 * downstream ports without ACS so groups vary in size), kernel drivers on most endpoints, and a
 * number of VMs that each own a few groups and map pages into their domain until the host holds
 * the requested number of mappings. Deterministic: the same options give the same commands.
 */

export interface BigHostOptions {
  readonly devices?: number;
  readonly mappings?: number;
  readonly vms?: number;
}

const hex2 = (n: number): string => n.toString(16).padStart(2, '0');
const hex4 = (n: number): string => n.toString(16).padStart(4, '0');

/** The commands, in order (privileged ones as root, the VMs' as uid 1000 + k). */
export const bigHostCommands = (o: BigHostOptions = {}): Record<string, unknown>[] => {
  const want = o.devices ?? 5000;
  const mappings = o.mappings ?? 100_000;
  const vms = o.vms ?? 20;
  const out: Record<string, unknown>[] = [];
  const endpoints: string[] = [];
  let count = 0;
  const add = (c: Record<string, unknown>): boolean => {
    if (count >= want) return false;
    out.push({ type: 'device.add', bus: 'pci', ...c });
    count++;
    return true;
  };
  out.push({ type: 'iommu.add', iommu: 'vtd0', personality: 'linux', pageSizes: '0x40201000', msiIsolation: true, reserved: [{ start: '0xfee00000', last: '0xfeefffff', kind: 'msi' }] });
  const drivers = ['nvme', 'ixgbe', 'mlx5_core', 'ahci', 'xhci_hcd'];
  for (let seg = 0; count < want && seg < 0x100; seg++) {
    const hb = `pci${hex4(seg)}:00`;
    add({ device: hb, parent: null, iommu: 'vtd0', pci: { kind: 'host-bridge' }, name: `host bridge ${seg}` });
    let bus = 1;
    for (let rp = 1; rp <= 10 && count < want; rp++) {
      const port = `${hex4(seg)}:00:${hex2(rp)}.0`;
      add({ device: port, parent: hb, pci: { kind: 'root-port', acs: { cap: 'SV,RR,CR,UF', ctl: 'SV,RR,CR,UF' } }, name: `root port ${rp}` });
      const up = `${hex4(seg)}:${hex2(bus)}:00.0`;
      add({ device: up, parent: port, pci: { kind: 'switch-upstream' }, name: 'switch upstream port' });
      const inner = bus + 1;
      bus += 2;
      for (let dp = 0; dp < 12 && count < want; dp++) {
        const down = `${hex4(seg)}:${hex2(inner)}:${hex2(dp)}.0`;
        const acs = dp % 2 === 0 ? { cap: 'SV,RR,CR,UF', ctl: 'SV,RR,CR,UF' } : null;
        add({ device: down, parent: up, pci: { kind: 'switch-downstream', acs }, name: acs ? 'downstream port' : 'downstream port (no ACS)' });
        const sec = bus++;
        for (let fn = 0; fn < 8 && count < want; fn++) {
          const ep = `${hex4(seg)}:${hex2(sec)}:00.${fn}`;
          if (add({ device: ep, parent: down, pci: { kind: 'endpoint', multifunction: true, acs: null }, class: '0x010802', vendor: '0x8086', product: hex4(0x0a54 + fn), name: `endpoint ${fn}` })) endpoints.push(ep);
        }
      }
    }
  }
  // Kernel drivers on most endpoints; every 8th slot stays driverless (later handed to VMs).
  const slots = new Map<string, string[]>();
  for (const ep of endpoints) {
    const slot = ep.slice(0, ep.lastIndexOf(':'));
    (slots.get(slot) ?? slots.set(slot, []).get(slot)!).push(ep);
  }
  const slotList = [...slots.values()];
  const vmSlots: string[][] = [];
  slotList.forEach((fns, i) => {
    const forVm = i % 8 === 3 && vmSlots.length < vms * 2 && fns.length === 8;
    if (forVm) vmSlots.push(fns);
    for (const ep of fns) out.push({ type: 'driver.bind', device: ep, driver: forVm ? 'vfio-pci' : drivers[i % drivers.length]! });
  });
  // VMs: each gets up to two slots (their groups), one domain, and its share of the mappings.
  const perVm = Math.ceil(mappings / Math.max(1, Math.min(vms, Math.ceil(vmSlots.length / 2))));
  let mapped = 0;
  for (let v = 0; v < vms && mapped < mappings; v++) {
    const mine = vmSlots.slice(v * 2, v * 2 + 2);
    if (mine.length === 0) break;
    const uid = 1000 + v;
    const actor = { uid, comm: 'qemu-system-x86' };
    const ctx = `vm${v}`;
    out.push({ type: 'ctx.open', ctx, kind: 'iommufd', actor });
    out.push({ type: 'domain.alloc', domain: `${ctx}-ioas`, ctx, iommu: 'vtd0', kind: 'paging', actor });
    for (const fns of mine) {
      out.push({ type: 'device.grant', device: fns[0]!, uid });
      out.push({ type: 'device.bind', device: fns[0]!, ctx, actor });
      out.push({ type: 'device.attach', device: fns[0]!, domain: `${ctx}-ioas`, actor });
    }
    out.push({ type: 'kvm.associate', ctx, vm: `guest${v}`, actor });
    for (let k = 0; k < perVm && mapped < mappings; k++, mapped++) {
      const iova = BigInt(k) * 0x1000n;
      const pa = 0x100000000n + BigInt(v) * 0x10000000n + BigInt(k) * 0x1000n;
      out.push({ type: 'map', domain: `${ctx}-ioas`, iova: `0x${iova.toString(16)}`, length: '0x1000', pa: `0x${pa.toString(16)}`, prot: k % 5 === 0 ? 'r' : 'rw', actor });
    }
  }
  return out;
};
