// PCI register layouts shared by the host bridge, functions and capabilities:
// the type-0 configuration header (PCI Local Bus Specification 3.0, 6.1 and
// 6.2), Base Address Registers (6.2.5.1), the capability list (6.7), MSI
// (6.8.1) and MSI-X (6.8.2), and configuration mechanism #1 (3.2.2.3.2).
// PCIe Base Specification references are to r4.0 (7.5.1 "Type 0/1 Common
// Configuration Space", 7.2.2 "PCI Express Enhanced Configuration Access
// Mechanism (ECAM)").
//
// Constants only; no behaviour. One place so every register offset and bit is
// spelled once, with its section.
#ifndef IRQLAB_PCI_PCI_REGS_H_
#define IRQLAB_PCI_PCI_REGS_H_

#include <cstdint>

namespace irqlab::pci {

// --- Type-0 configuration header (PCI 3.0, 6.1, figure 6-1). ---
inline constexpr uint16_t kVendorId = 0x00;        // 16 bits, RO
inline constexpr uint16_t kDeviceId = 0x02;        // 16 bits, RO
inline constexpr uint16_t kCommand = 0x04;         // 16 bits, 6.2.2
inline constexpr uint16_t kStatus = 0x06;          // 16 bits, 6.2.3
inline constexpr uint16_t kRevisionId = 0x08;      // 8 bits, RO
inline constexpr uint16_t kClassCode = 0x09;       // 24 bits, RO (prog-if, sub, base)
inline constexpr uint16_t kCacheLineSize = 0x0C;   // 8 bits, RW
inline constexpr uint16_t kLatencyTimer = 0x0D;    // 8 bits, RW
inline constexpr uint16_t kHeaderType = 0x0E;      // 8 bits, RO; bit 7 multi-function
inline constexpr uint16_t kBar0 = 0x10;            // six dwords 0x10-0x27
inline constexpr uint16_t kSubsystemVendorId = 0x2C;
inline constexpr uint16_t kSubsystemId = 0x2E;
inline constexpr uint16_t kExpansionRom = 0x30;    // not implemented: reads 0
inline constexpr uint16_t kCapabilitiesPointer = 0x34;  // 8 bits, RO
inline constexpr uint16_t kInterruptLine = 0x3C;   // 8 bits, RW (6.2.4)
inline constexpr uint16_t kInterruptPin = 0x3D;    // 8 bits, RO: 0 none, 1..4 INTA#..INTD#

inline constexpr int kNumBars = 6;
inline constexpr uint8_t kHeaderTypeMultiFunction = 0x80;

// Configuration space sizes: 256 bytes conventional, 4 KiB with the PCIe
// extended space (PCIe 7.2.2).
inline constexpr uint32_t kConventionalConfigSize = 0x100;
inline constexpr uint32_t kExtendedConfigSize = 0x1000;

// --- Command register (PCI 3.0, 6.2.2, figure 6-2). ---
inline constexpr uint16_t kCommandIoSpace = 1u << 0;
inline constexpr uint16_t kCommandMemorySpace = 1u << 1;
inline constexpr uint16_t kCommandBusMaster = 1u << 2;
inline constexpr uint16_t kCommandParityError = 1u << 6;
inline constexpr uint16_t kCommandSerr = 1u << 8;
inline constexpr uint16_t kCommandIntxDisable = 1u << 10;
// The bits our functions implement; all others are hardwired to 0.
inline constexpr uint16_t kCommandWritableMask =
    kCommandIoSpace | kCommandMemorySpace | kCommandBusMaster |
    kCommandParityError | kCommandSerr | kCommandIntxDisable;

// --- Status register (PCI 3.0, 6.2.3, figure 6-3). ---
inline constexpr uint16_t kStatusInterrupt = 1u << 3;       // RO: INTx asserted
inline constexpr uint16_t kStatusCapabilityList = 1u << 4;  // RO
inline constexpr uint16_t kStatusMasterDataParity = 1u << 8;     // RW1C
inline constexpr uint16_t kStatusSignaledTargetAbort = 1u << 11; // RW1C
inline constexpr uint16_t kStatusReceivedTargetAbort = 1u << 12; // RW1C
inline constexpr uint16_t kStatusReceivedMasterAbort = 1u << 13; // RW1C
inline constexpr uint16_t kStatusSignaledSystemError = 1u << 14; // RW1C
inline constexpr uint16_t kStatusDetectedParity = 1u << 15;      // RW1C
inline constexpr uint16_t kStatusRw1cMask =
    kStatusMasterDataParity | kStatusSignaledTargetAbort |
    kStatusReceivedTargetAbort | kStatusReceivedMasterAbort |
    kStatusSignaledSystemError | kStatusDetectedParity;

// --- Base Address Registers (PCI 3.0, 6.2.5.1, figures 6-5/6-6). ---
inline constexpr uint32_t kBarIoSpace = 1u << 0;          // bit 0: 1 = I/O
inline constexpr uint32_t kBarMemType64 = 0x2u << 1;      // bits 2:1 = 10b
inline constexpr uint32_t kBarPrefetchable = 1u << 3;
inline constexpr uint32_t kBarMemFlagsMask = 0xF;         // bits 3:0 RO
inline constexpr uint32_t kBarIoFlagsMask = 0x3;          // bits 1:0 RO
inline constexpr uint64_t kMinMemBarSize = 16;            // 6.2.5.1: >= 16 bytes
inline constexpr uint64_t kMinIoBarSize = 4;
inline constexpr uint64_t kMaxIoBarSize = 256;            // 6.2.5.1: <= 256 bytes

// --- Capability list (PCI 3.0, 6.7). ---
inline constexpr uint8_t kCapIdMsi = 0x05;   // 6.8.1
inline constexpr uint8_t kCapIdMsix = 0x11;  // 6.8.2
// Capabilities live in the device-specific region 0x40-0xFF, dword aligned.
inline constexpr uint16_t kFirstCapabilityOffset = 0x40;

// --- MSI capability (PCI 3.0, 6.8.1, figure 6-9). Offsets from the cap. ---
inline constexpr uint16_t kMsiControl = 0x02;
inline constexpr uint16_t kMsiAddressLo = 0x04;
inline constexpr uint16_t kMsiAddressHi = 0x08;     // 64-bit variant only
inline constexpr uint16_t kMsiData32 = 0x08;        // 32-bit variant
inline constexpr uint16_t kMsiData64 = 0x0C;        // 64-bit variant
inline constexpr uint16_t kMsiMask32 = 0x0C;        // per-vector masking, 32-bit
inline constexpr uint16_t kMsiPending32 = 0x10;
inline constexpr uint16_t kMsiMask64 = 0x10;        // per-vector masking, 64-bit
inline constexpr uint16_t kMsiPending64 = 0x14;
// Message Control (6.8.1.3).
inline constexpr uint16_t kMsiControlEnable = 1u << 0;
inline constexpr int kMsiControlMmcShift = 1;       // bits 3:1, RO
inline constexpr int kMsiControlMmeShift = 4;       // bits 6:4, RW
inline constexpr uint16_t kMsiControlMmeMask = 0x7u << 4;
inline constexpr uint16_t kMsiControl64Bit = 1u << 7;
inline constexpr uint16_t kMsiControlPerVectorMask = 1u << 8;

// --- MSI-X capability (PCI 3.0, 6.8.2, figure 6-10). Offsets from the cap. ---
inline constexpr uint16_t kMsixControl = 0x02;
inline constexpr uint16_t kMsixTableOffsetBir = 0x04;
inline constexpr uint16_t kMsixPbaOffsetBir = 0x08;
inline constexpr uint8_t kMsixCapLength = 12;
// Message Control (6.8.2.3).
inline constexpr uint16_t kMsixControlTableSizeMask = 0x07FF;  // N-1, RO
inline constexpr uint16_t kMsixControlFunctionMask = 1u << 14;
inline constexpr uint16_t kMsixControlEnable = 1u << 15;
inline constexpr uint32_t kMsixBirMask = 0x7;                  // bits 2:0
// Table entry (6.8.2.6 - 6.8.2.9): 16 bytes.
inline constexpr uint32_t kMsixEntrySize = 16;
inline constexpr uint32_t kMsixEntryAddressLo = 0x0;
inline constexpr uint32_t kMsixEntryAddressHi = 0x4;
inline constexpr uint32_t kMsixEntryData = 0x8;
inline constexpr uint32_t kMsixEntryVectorControl = 0xC;
inline constexpr uint32_t kMsixVectorControlMask = 1u << 0;
inline constexpr unsigned kMsixMaxVectors = 2048;

// --- Configuration mechanism #1 (PCI 3.0, 3.2.2.3.2). ---
inline constexpr uint16_t kConfigAddressPort = 0xCF8;
inline constexpr uint16_t kConfigDataPort = 0xCFC;
inline constexpr uint64_t kConfigPortsSize = 8;  // 0xCF8-0xCFF
inline constexpr uint32_t kConfigAddressEnable = 1u << 31;

// Requester id (PCIe 2.2.6.2): bus[15:8] device[7:3] function[2:0].
constexpr uint16_t MakeRequesterId(uint8_t bus, uint8_t device,
                                   uint8_t function) {
  return static_cast<uint16_t>((bus << 8) | ((device & 0x1F) << 3) |
                               (function & 0x7));
}

}  // namespace irqlab::pci

#endif  // IRQLAB_PCI_PCI_REGS_H_
