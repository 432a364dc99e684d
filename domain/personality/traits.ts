/**
 * What the reducer needs to know of a personality: the structural traits, without the deciding
 * rules (so the reducer imports no decider and the strategies may use the reducer freely).
 */
import type { Iommu, Personality } from '../state.js';

export interface PersonalityTraits {
  /** Groups of the IOMMU get a kernel default domain (`default:N`). */
  readonly hasDefaultDomain: boolean;
  /** Devices attach one by one as endpoints; groups have no domain of their own. */
  readonly attachesPerEndpoint: boolean;
}

export const TRAITS: { readonly [P in Personality]: PersonalityTraits } = {
  linux: { hasDefaultDomain: true, attachesPerEndpoint: false },
  virtio: { hasDefaultDomain: false, attachesPerEndpoint: true },
};

/** A new group of this IOMMU gets a kernel default domain. */
export const hasDefaultDomain = (iommu: Iommu | null | undefined): iommu is Iommu => !!iommu && TRAITS[iommu.personality].hasDefaultDomain;

/** An attachment to a domain of this IOMMU is the endpoint's, not its group's (devices without a known IOMMU follow linux). */
export const attachesPerEndpoint = (iommu: Iommu | null | undefined): boolean => !!iommu && TRAITS[iommu.personality].attachesPerEndpoint;
