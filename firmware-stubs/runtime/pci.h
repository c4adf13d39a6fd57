/*
 * pci.h: guest-side PCI configuration access (configuration mechanism #1,
 * PCI 3.0 3.2.2.3.2: CONFIG_ADDRESS 0xCF8, CONFIG_DATA 0xCFC-0xCFF) and
 * small helpers on top: device lookup on bus 0, BAR decode, capability
 * walk, MSI capability register offsets. Header-only (static inline),
 * additive to runtime.h: include it after runtime.h.
 *
 * Not locked: CONFIG_ADDRESS is one shared register, so use these from one
 * CPU at a time (the programs configure devices on the BSP).
 */
#ifndef IRQLAB_GUEST_PCI_H_
#define IRQLAB_GUEST_PCI_H_

#include "runtime.h"

#define PCI_CONFIG_ADDRESS 0xCF8
#define PCI_CONFIG_DATA 0xCFC

/* Type-0 header (PCI 3.0 6.1). */
#define PCI_VENDOR_ID 0x00
#define PCI_DEVICE_ID 0x02
#define PCI_COMMAND 0x04
#define PCI_STATUS 0x06
#define PCI_CLASS_REVISION 0x08
#define PCI_HEADER_TYPE 0x0E
#define PCI_BAR0 0x10
#define PCI_CAPABILITY_LIST 0x34
#define PCI_INTERRUPT_LINE 0x3C
#define PCI_INTERRUPT_PIN 0x3D

#define PCI_COMMAND_IO 0x0001
#define PCI_COMMAND_MEMORY 0x0002
#define PCI_COMMAND_MASTER 0x0004
#define PCI_COMMAND_INTX_DISABLE 0x0400
#define PCI_STATUS_INTERRUPT 0x0008
#define PCI_STATUS_CAP_LIST 0x0010

#define PCI_CAP_ID_MSI 0x05
#define PCI_CAP_ID_MSIX 0x11

/* MSI capability (PCI 3.0 6.8.1), offsets from the capability. */
#define PCI_MSI_FLAGS 0x02
#define PCI_MSI_FLAGS_ENABLE 0x0001
#define PCI_MSI_FLAGS_MMC_SHIFT 1 /* bits 3:1 */
#define PCI_MSI_FLAGS_MME_SHIFT 4 /* bits 6:4 */
#define PCI_MSI_FLAGS_64BIT 0x0080
#define PCI_MSI_FLAGS_MASKBIT 0x0100
#define PCI_MSI_ADDRESS_LO 0x04
#define PCI_MSI_ADDRESS_HI 0x08       /* 64-bit layouts */
#define PCI_MSI_DATA(is64) ((is64) ? 0x0C : 0x08)
#define PCI_MSI_MASK(is64) ((is64) ? 0x10 : 0x0C)
#define PCI_MSI_PENDING(is64) ((is64) ? 0x14 : 0x10)

/* MSI-X capability (PCI 3.0 6.8.2). */
#define PCI_MSIX_FLAGS 0x02
#define PCI_MSIX_FLAGS_QSIZE 0x07FF
#define PCI_MSIX_FLAGS_MASKALL 0x4000
#define PCI_MSIX_FLAGS_ENABLE 0x8000
#define PCI_MSIX_TABLE 0x04 /* BIR in bits 2:0, offset in 31:3 */
#define PCI_MSIX_PBA 0x08
#define PCI_MSIX_ENTRY_SIZE 16
#define PCI_MSIX_ENTRY_ADDR_LO 0x0
#define PCI_MSIX_ENTRY_ADDR_HI 0x4
#define PCI_MSIX_ENTRY_DATA 0x8
#define PCI_MSIX_ENTRY_CTRL 0xC
#define PCI_MSIX_ENTRY_CTRL_MASKBIT 0x1

/* A compatibility-format MSI address for fixed delivery to a physical
 * APIC id (SDM 11.11.1), and the data for an edge-triggered vector. */
#define MSI_ADDR(dest_apic_id) (0xFEE00000u | ((uint32_t)(dest_apic_id) << 12))
#define MSI_DATA_EDGE(vector) ((uint32_t)(vector) & 0xFF)

static inline uint32_t pci_cfg_address(int bus, int dev, int fn, int reg) {
  return 0x80000000u | (uint32_t)bus << 16 | (uint32_t)dev << 11 |
         (uint32_t)fn << 8 | ((uint32_t)reg & 0xFC);
}
static inline uint32_t pci_cfg_read32(int bus, int dev, int fn, int reg) {
  outl(PCI_CONFIG_ADDRESS, pci_cfg_address(bus, dev, fn, reg));
  return inl(PCI_CONFIG_DATA);
}
static inline uint16_t pci_cfg_read16(int bus, int dev, int fn, int reg) {
  outl(PCI_CONFIG_ADDRESS, pci_cfg_address(bus, dev, fn, reg));
  return inw(PCI_CONFIG_DATA + (reg & 2));
}
static inline uint8_t pci_cfg_read8(int bus, int dev, int fn, int reg) {
  outl(PCI_CONFIG_ADDRESS, pci_cfg_address(bus, dev, fn, reg));
  return inb(PCI_CONFIG_DATA + (reg & 3));
}
static inline void pci_cfg_write32(int bus, int dev, int fn, int reg,
                                   uint32_t v) {
  outl(PCI_CONFIG_ADDRESS, pci_cfg_address(bus, dev, fn, reg));
  outl(PCI_CONFIG_DATA, v);
}
static inline void pci_cfg_write16(int bus, int dev, int fn, int reg,
                                   uint16_t v) {
  outl(PCI_CONFIG_ADDRESS, pci_cfg_address(bus, dev, fn, reg));
  outw(PCI_CONFIG_DATA + (reg & 2), v);
}
static inline void pci_cfg_write8(int bus, int dev, int fn, int reg,
                                  uint8_t v) {
  outl(PCI_CONFIG_ADDRESS, pci_cfg_address(bus, dev, fn, reg));
  outb(PCI_CONFIG_DATA + (reg & 3), v);
}

/* Finds vendor:device on bus 0 (function 0 of each device, and functions
 * 1-7 of multi-function devices). Returns devfn (dev << 3 | fn) or -1. */
static inline int pci_find_device(uint16_t vendor, uint16_t device) {
  for (int dev = 0; dev < 32; dev++) {
    for (int fn = 0; fn < 8; fn++) {
      uint32_t id = pci_cfg_read32(0, dev, fn, PCI_VENDOR_ID);
      if ((id & 0xFFFF) == 0xFFFF) {
        if (fn == 0) break;
        continue;
      }
      if ((id & 0xFFFF) == vendor && (id >> 16) == device)
        return dev << 3 | fn;
      if (fn == 0 && !(pci_cfg_read8(0, dev, 0, PCI_HEADER_TYPE) & 0x80))
        break;
    }
  }
  return -1;
}

/* Offset of the first capability with `id`, or 0. */
static inline int pci_find_cap(int dev, int fn, uint8_t id) {
  if (!(pci_cfg_read16(0, dev, fn, PCI_STATUS) & PCI_STATUS_CAP_LIST))
    return 0;
  int off = pci_cfg_read8(0, dev, fn, PCI_CAPABILITY_LIST) & 0xFC;
  for (int guard = 0; off && guard < 48; guard++) {
    if (pci_cfg_read8(0, dev, fn, off) == id) return off;
    off = pci_cfg_read8(0, dev, fn, off + 1) & 0xFC;
  }
  return 0;
}

/* The address a memory BAR (32- or 64-bit) or I/O BAR decodes, as the
 * firmware assigned it (type bits stripped). */
static inline uint64_t pci_bar_address(int dev, int fn, int bar) {
  uint32_t lo = pci_cfg_read32(0, dev, fn, PCI_BAR0 + 4 * bar);
  if (lo & 1) return lo & ~3u;             /* I/O */
  uint64_t a = lo & ~0xFu;
  if (((lo >> 1) & 3) == 2)                /* 64-bit: next BAR is the top */
    a |= (uint64_t)pci_cfg_read32(0, dev, fn, PCI_BAR0 + 4 * (bar + 1)) << 32;
  return a;
}

#endif /* IRQLAB_GUEST_PCI_H_ */
