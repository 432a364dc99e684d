/**
 * What a personality strategy is: the rules that differ between linux and virtio-iommu, and how a
 * device's effective domain is found.
 */
import type { Command } from '../commands.js';
import type { Working } from '../decide/common.js';
import type { Device, Domain, Group, Iommu, Personality, State } from '../state.js';
import type { Status } from './status.js';
import type { PersonalityTraits } from './traits.js';

type Cmd<T extends Command['type']> = Command & { type: T };

/** The domain a device's access goes through and what decided it. */
export interface EffectiveDomain {
  readonly domain: Domain | null;
  /** 'attached', 'group', 'default', 'blocked', 'bypass', 'pasid' or 'none'. */
  readonly path: string;
  /** Other members whose attachment the device rides (linux group attachment). */
  readonly viaGroup?: string[];
}

export interface PersonalityStrategy extends PersonalityTraits {
  readonly name: Personality;
  /** This personality's status for a code a shared rule refused with. */
  status(code: Status): Status;
  /** domain.alloc, once the shared checks (ctx, id, IOMMU) passed. */
  allocDomain(w: Working, c: Cmd<'domain.alloc'>, iommu: Iommu): void;
  attach(w: Working, c: Cmd<'device.attach'>): void;
  detach(w: Working, c: Cmd<'device.detach'>): void;
  map(w: Working, c: Cmd<'map'>): void;
  unmap(w: Working, c: Cmd<'unmap'>): void;
  /** The domain an access of `dev` (in group `g`) goes through. */
  effectiveDomain(state: State, dev: Device, g: Group, iommu: Iommu | undefined, pasid: number | null): EffectiveDomain;
  /**
   * The domain a device's RID (PASID-less) DMA goes through, null when blocked, 'bypass' when the
   * IOMMU lets it through untranslated: `effectiveDomain` without the why, for whole-host scans.
   */
  ridDomain(state: State, dev: Device, g: Group, iommu: Iommu | undefined): Domain | 'bypass' | null;
  /** A group's domain as listings show it: a domain id, "blocked" or "per-endpoint". */
  groupDomain(g: Group): string;
}

