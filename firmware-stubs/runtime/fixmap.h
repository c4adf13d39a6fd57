/* A Linux-style fixmap for the local APIC: the xAPIC page mapped through a
 * 4 KiB page table entry at a virtual address of its own, as Linux maps it
 * (FIX_APIC_BASE, arch/x86/kernel/apic/apic.c: set_fixmap_nocache), instead
 * of through the runtime's identity map (2 MiB pages).
 *
 * Why a guest may want it under irqlab: Unicorn's software TLB starts with
 * 256 entries indexed by virtual page number mod 256, so every 1 MiB-aligned
 * virtual page shares slot 0 -- the identity-mapped LAPIC (0xFEE00000) and
 * any 1 MiB-aligned device BAR page (edu's BAR0, 0xC0000000) evict each
 * other on every access (a guest page walk inside Unicorn each time). The
 * fixmap page sits at FIXMAP_LAPIC_VA, virtual page 1 mod 256.
 *
 * Layout: PDPT[4] of the boot tables (virtual 4 GiB, just above the
 * identity map) -> fixmap_pd[0] -> fixmap_pt[1] = LAPIC_BASE, uncached.
 * Include this header from one translation unit only (it defines the
 * tables). */
#ifndef IRQLAB_RUNTIME_FIXMAP_H
#define IRQLAB_RUNTIME_FIXMAP_H

#include "runtime.h"

#define FIXMAP_BASE 0x100000000ull
#define FIXMAP_LAPIC_VA (FIXMAP_BASE + 0x1000)

static uint64_t fixmap_pd[512] __attribute__((aligned(4096)));
static uint64_t fixmap_pt[512] __attribute__((aligned(4096)));

/* Maps the xAPIC page at FIXMAP_LAPIC_VA and returns that address (the
 * identity mapping stays). */
static inline uint64_t lapic_fixmap(void) {
  fixmap_pt[1] = LAPIC_BASE | PTE_P | PTE_W | PTE_PCD | PTE_PWT;
  fixmap_pd[0] = (uint64_t)(uintptr_t)fixmap_pt | PTE_P | PTE_W;
  boot_pdpt[FIXMAP_BASE >> 30] = (uint64_t)(uintptr_t)fixmap_pd | PTE_P | PTE_W;
  flush_tlb();
  return FIXMAP_LAPIC_VA;
}

#endif
