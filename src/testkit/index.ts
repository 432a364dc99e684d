/**
 * `isogroup/testkit`: a simulated host for tests of VMMs, device plugins and orchestrators —
 * a fluent topology builder, the commands as methods that return results, canned machines, a
 * seeded hotplug storm and jest matchers. Guide and reference: docs/testkit.md.
 */
export {
  DEFAULT_START,
  addr,
  createHost,
  deterministicIds,
  openHost,
  steppingClock,
  type ActorOptions,
  type Address,
  type DeviceSubject,
  type DmaCheck,
  type DmaInput,
  type DmaQueryInput,
  type DmaResult,
  type Host,
  type HostCommands,
  type HostOptions,
  type HostResult,
  type MapInput,
  type UnmapInput,
  type MmioInput,
} from './host.js';
export type {
  AcsSpec,
  BridgeHandle,
  BusHandle,
  DeviceHandle,
  DeviceOptions,
  EndpointHandle,
  EndpointOptions,
  IommuHandle,
  IommuOptions,
  PlatformOptions,
  PortHandle,
  PortOptions,
  RegionInput,
  SwitchHandle,
  SwitchOptions,
  Topology,
  VfOptions,
} from './topology.js';
export { desktop, laptop, server, vm, type Canned, type DesktopDevice, type LaptopDevice, type ServerDevice, type VmDevice } from './canned.js';
export { GUEST_RAM, VF_TOKEN, gpuDmabuf, iopfDevice, nestedVm, sriovPf } from './iommufd-canned.js';
export type { HwptOptions, IommufdCommands, MapFileInput } from './iommufd.js';
export {
  DEFAULT_MIX,
  MIX_PRESETS,
  STORM_CATEGORIES,
  parseMix,
  storm,
  stormSteps,
  type StormCategory,
  type StormCommand,
  type StormMix,
  type StormOptions,
  type StormStep,
} from './storm.js';
export { createRng, seedOf, type Rng, type Seed } from './prng.js';
export { installMatchers, matchers, type DmaExpectation } from './matchers.js';
export { workstation, type WorkstationDevice, type WorkstationOptions } from './canned-reset.js';
export { type ResetCapsInput } from './host.js';
export { chainOf, renderChain, type Chain } from './explain.js';
/** Event versions in tests: install a table with a deliberate shape change (a v2, an old v0) and prove old logs read the same. */
export { defineUpcasting, useUpcasting, EVENT_VERSIONS, type Upcaster } from '../../domain/schema/upcast.js';
export { storedForm } from '../store/upcast.js';
