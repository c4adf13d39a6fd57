// Register layout and in-memory data structures of an Intel VT-d remapping
// hardware unit, in one place (value types and constants only; behaviour is
// in vtd_unit.h).
//
// Source: Intel Virtualization Technology for Directed I/O, Architecture
// Specification, rev. 4.x/5.x ("[VT-d]" below):
//   ch. 5   interrupt remapping (5.1.2 request formats, 5.1.4 hardware
//           operation), interrupt posting (5.2)
//   ch. 6   caching and invalidation (6.5.2 queued invalidation descriptors)
//   ch. 7   fault reporting (7.1 fault reasons, 7.2 primary fault logging,
//           7.3 fault event interrupt)
//   ch. 9   data structures (9.10 IRTE remapped format, 9.11 IRTE posted
//           format, 9.12 posted-interrupt descriptor)
//   ch. 11  registers (11.4.x)
// Linux strings from drivers/iommu/intel/dmar.c.
//
// Not modelled here: scalable-mode structures (PASID tables, 256-bit
// PASID-based descriptors), advanced fault logging, protected memory
// regions, page request queue, MTRRs, performance monitoring.
#ifndef IRQLAB_IOMMU_VTD_REGS_H_
#define IRQLAB_IOMMU_VTD_REGS_H_

#include <cstdint>
#include <string>
#include <string_view>

namespace irqlab::vtd {

// Bits hi..lo of v, shifted down.
constexpr uint64_t Field(uint64_t v, unsigned hi, unsigned lo) {
  return (v >> lo) &
         (hi - lo >= 63 ? ~uint64_t{0} : (uint64_t{1} << (hi - lo + 1)) - 1);
}
// A mask of bits hi..lo.
constexpr uint64_t BitRange(unsigned hi, unsigned lo) {
  return (hi - lo >= 63 ? ~uint64_t{0} : (uint64_t{1} << (hi - lo + 1)) - 1)
         << lo;
}
constexpr uint64_t Bit(unsigned n) { return uint64_t{1} << n; }
static_assert(BitRange(7, 4) == 0xF0);
static_assert(Field(0xABCD, 11, 4) == 0xBC);

// ---------------------------------------------------------------------------
// Register offsets ([VT-d] 11.4, Table "Register offsets").
// ---------------------------------------------------------------------------
inline constexpr uint64_t kDefaultBase = 0xFED90000;
// One 4 KiB page of registers ([VT-d] 11.1: the register set of a unit is
// page aligned and a multiple of 4 KiB).
inline constexpr uint64_t kRegisterFileSize = 0x1000;

inline constexpr uint64_t kVerReg = 0x00;      // 32  11.4.1
inline constexpr uint64_t kCapReg = 0x08;      // 64  11.4.2
inline constexpr uint64_t kEcapReg = 0x10;     // 64  11.4.3
inline constexpr uint64_t kGcmdReg = 0x18;     // 32  11.4.4.1
inline constexpr uint64_t kGstsReg = 0x1C;     // 32  11.4.4.2
inline constexpr uint64_t kRtaddrReg = 0x20;   // 64  11.4.5
inline constexpr uint64_t kCcmdReg = 0x28;     // 64  11.4.6
inline constexpr uint64_t kFstsReg = 0x34;     // 32  11.4.7.1
inline constexpr uint64_t kFectlReg = 0x38;    // 32  11.4.7.2
inline constexpr uint64_t kFedataReg = 0x3C;   // 32  11.4.7.3
inline constexpr uint64_t kFeaddrReg = 0x40;   // 32  11.4.7.4
inline constexpr uint64_t kFeuaddrReg = 0x44;  // 32  11.4.7.5
inline constexpr uint64_t kAflogReg = 0x58;    // 64  11.4.7.7 (AFL=0: reads 0)
inline constexpr uint64_t kPmenReg = 0x64;     // 32  11.4.13 (PLMR=PHMR=0)
inline constexpr uint64_t kIqhReg = 0x80;      // 64  11.4.9.1
inline constexpr uint64_t kIqtReg = 0x88;      // 64  11.4.9.2
inline constexpr uint64_t kIqaReg = 0x90;      // 64  11.4.9.3
inline constexpr uint64_t kIcsReg = 0x9C;      // 32  11.4.9.4
inline constexpr uint64_t kIectlReg = 0xA0;    // 32  11.4.9.5
inline constexpr uint64_t kIedataReg = 0xA4;   // 32  11.4.9.6
inline constexpr uint64_t kIeaddrReg = 0xA8;   // 32  11.4.9.7
inline constexpr uint64_t kIeuaddrReg = 0xAC;  // 32  11.4.9.8
inline constexpr uint64_t kIqercdReg = 0xB0;   // 64  11.4.9.9 (rev 4.0+)
inline constexpr uint64_t kIrtaReg = 0xB8;     // 64  11.4.10.1

// Implementation-chosen offsets, reported through ECAP.IRO and CAP.FRO
// (both in 16-byte units). Chosen clear of every architectural register
// (MTRRs at 0x100-0x27F exist only with ECAP.MTS=1, which we report 0).
inline constexpr uint64_t kIotlbRegsOffset = 0x200;  // IVA_REG; IOTLB_REG +8
inline constexpr uint64_t kIvaReg = kIotlbRegsOffset;           // 11.4.8.2
inline constexpr uint64_t kIotlbReg = kIotlbRegsOffset + 0x8;   // 11.4.8.1
inline constexpr uint64_t kFaultRecordsOffset = 0x400;  // FRCD_REG 0
inline constexpr uint64_t kFaultRecordSize = 16;        // 128-bit, 11.4.7.6
// The records must fit in the 4 KiB page: at most 192 (CAP.NFR allows 256).
inline constexpr int kMaxFaultRecords =
    (kRegisterFileSize - kFaultRecordsOffset) / kFaultRecordSize;
static_assert(kMaxFaultRecords == 192);
static_assert(kIotlbRegsOffset % 16 == 0 && kFaultRecordsOffset % 16 == 0);
static_assert(kIotlbReg + 8 <= kFaultRecordsOffset);

// ---------------------------------------------------------------------------
// VER_REG (11.4.1): bits 7:4 major, 3:0 minor.
// ---------------------------------------------------------------------------
inline constexpr uint32_t kVersion = 0x10;  // 1.0, as QEMU and most parts

// ---------------------------------------------------------------------------
// CAP_REG (11.4.2).
// ---------------------------------------------------------------------------
struct Cap {
  static constexpr unsigned kNdShift = 0;         // 2:0 number of domains
  static constexpr uint64_t kAfl = Bit(3);        // advanced fault logging
  static constexpr uint64_t kRwbf = Bit(4);       // required write-buffer flush
  static constexpr uint64_t kPlmr = Bit(5);
  static constexpr uint64_t kPhmr = Bit(6);
  static constexpr uint64_t kCm = Bit(7);         // caching mode
  static constexpr unsigned kSagawShift = 8;      // 12:8
  static constexpr unsigned kMgawShift = 16;      // 21:16 (MGAW - 1)
  static constexpr uint64_t kZlr = Bit(22);
  static constexpr unsigned kFroShift = 24;       // 33:24 (offset / 16)
  static constexpr unsigned kSllpsShift = 34;     // 37:34
  static constexpr uint64_t kPsi = Bit(39);
  static constexpr unsigned kNfrShift = 40;       // 47:40 (count - 1)
  static constexpr unsigned kMamvShift = 48;      // 53:48
  static constexpr uint64_t kDwd = Bit(54);
  static constexpr uint64_t kDrd = Bit(55);
  static constexpr uint64_t kPi = Bit(59);        // posted interrupts
  static constexpr uint64_t kEsirtps = Bit(62);   // SIRTP invalidates the IEC
  static constexpr uint64_t kEsrtps = Bit(63);

  // SAGAW bits (value of field 12:8).
  static constexpr uint8_t kSagaw39 = 1 << 1;  // 3-level tables
  static constexpr uint8_t kSagaw48 = 1 << 2;  // 4-level tables
  static constexpr uint8_t kSagaw57 = 1 << 3;  // 5-level tables
  // SLLPS bits (value of field 37:34).
  static constexpr uint8_t kSllps2M = 1 << 0;
  static constexpr uint8_t kSllps1G = 1 << 1;

  uint64_t raw = 0;
  constexpr uint8_t nd() const { return Field(raw, 2, 0); }
  constexpr uint8_t sagaw() const { return Field(raw, 12, 8); }
  constexpr int mgaw() const { return static_cast<int>(Field(raw, 21, 16)) + 1; }
  constexpr uint64_t fault_records_offset() const {
    return Field(raw, 33, 24) * 16;
  }
  constexpr int num_fault_records() const {
    return static_cast<int>(Field(raw, 47, 40)) + 1;
  }
  constexpr uint8_t sllps() const { return Field(raw, 37, 34); }
  constexpr bool pi() const { return raw & kPi; }
  constexpr bool esirtps() const { return raw & kEsirtps; }
};

// ---------------------------------------------------------------------------
// ECAP_REG (11.4.3).
// ---------------------------------------------------------------------------
struct Ecap {
  static constexpr uint64_t kC = Bit(0);    // page-walk coherency
  static constexpr uint64_t kQi = Bit(1);   // queued invalidation
  static constexpr uint64_t kDt = Bit(2);   // device-TLB
  static constexpr uint64_t kIr = Bit(3);   // interrupt remapping
  static constexpr uint64_t kEim = Bit(4);  // extended interrupt mode (x2APIC)
  static constexpr uint64_t kPt = Bit(6);   // pass-through
  static constexpr uint64_t kSc = Bit(7);   // snoop control
  static constexpr unsigned kIroShift = 8;  // 17:8 (offset / 16)
  static constexpr unsigned kMhmvShift = 20;  // 23:20

  uint64_t raw = 0;
  constexpr bool qi() const { return raw & kQi; }
  constexpr bool ir() const { return raw & kIr; }
  constexpr bool eim() const { return raw & kEim; }
  constexpr bool pt() const { return raw & kPt; }
  constexpr uint64_t iotlb_regs_offset() const {
    return Field(raw, 17, 8) * 16;
  }
};

// ---------------------------------------------------------------------------
// GCMD_REG / GSTS_REG (11.4.4): command bit n is reflected in status bit n.
// ---------------------------------------------------------------------------
struct Gcmd {
  static constexpr uint32_t kTe = 1u << 31;     // translation enable
  static constexpr uint32_t kSrtp = 1u << 30;   // set root table pointer
  static constexpr uint32_t kSfl = 1u << 29;    // set fault log (AFL only)
  static constexpr uint32_t kEafl = 1u << 28;   // enable adv. fault logging
  static constexpr uint32_t kWbf = 1u << 27;    // write buffer flush (RWBF)
  static constexpr uint32_t kQie = 1u << 26;    // queued invalidation enable
  static constexpr uint32_t kIre = 1u << 25;    // interrupt remapping enable
  static constexpr uint32_t kSirtp = 1u << 24;  // set IRT pointer
  static constexpr uint32_t kCfi = 1u << 23;    // compatibility format intr
  // One-shot commands: their status bits are not "enabled" states but
  // "done" flags; 11.4.4.1 tells software to mask them out of the value it
  // read from GSTS before writing GCMD (Status & 0x96FFFFFF).
  static constexpr uint32_t kOneShot = kSrtp | kSfl | kWbf | kSirtp;
  static_assert((~kOneShot) == 0x96FFFFFFu);
  static constexpr uint32_t kAll = kTe | kSrtp | kSfl | kEafl | kWbf | kQie |
                                   kIre | kSirtp | kCfi;
};
struct Gsts {
  static constexpr uint32_t kTes = Gcmd::kTe;
  static constexpr uint32_t kRtps = Gcmd::kSrtp;
  static constexpr uint32_t kFls = Gcmd::kSfl;
  static constexpr uint32_t kAfls = Gcmd::kEafl;
  static constexpr uint32_t kWbfs = Gcmd::kWbf;
  static constexpr uint32_t kQies = Gcmd::kQie;
  static constexpr uint32_t kIres = Gcmd::kIre;
  static constexpr uint32_t kIrtps = Gcmd::kSirtp;
  static constexpr uint32_t kCfis = Gcmd::kCfi;
};

// RTADDR_REG (11.4.5): 63:12 root table address, 11:10 translation table
// mode (00 legacy, 01 scalable, 10 reserved/abort-DMA, 11 reserved).
inline constexpr uint64_t kRtaddrWritable = BitRange(63, 12) | BitRange(11, 10);

// ---------------------------------------------------------------------------
// CCMD_REG (11.4.6).
// ---------------------------------------------------------------------------
struct Ccmd {
  static constexpr uint64_t kIcc = Bit(63);
  static constexpr unsigned kCirgShift = 61;  // 62:61 requested granularity
  static constexpr unsigned kCaigShift = 59;  // 60:59 actual granularity
  static constexpr unsigned kFmShift = 32;    // 33:32 function mask
  static constexpr unsigned kSidShift = 16;   // 31:16
  static constexpr uint64_t kWritable =
      kIcc | BitRange(62, 61) | BitRange(33, 32) | BitRange(31, 0);
};

// ---------------------------------------------------------------------------
// IVA_REG / IOTLB_REG (11.4.8).
// ---------------------------------------------------------------------------
struct IotlbReg {
  static constexpr uint64_t kIvt = Bit(63);
  static constexpr unsigned kIirgShift = 60;  // 61:60
  static constexpr unsigned kIaigShift = 57;  // 58:57
  static constexpr uint64_t kDr = Bit(49);
  static constexpr uint64_t kDw = Bit(48);
  static constexpr unsigned kDidShift = 32;  // 47:32
  static constexpr uint64_t kWritable =
      kIvt | BitRange(61, 60) | kDr | kDw | BitRange(47, 32);
};
struct IvaReg {
  // 63:12 ADDR, 6 IH, 5:0 AM.
  static constexpr uint64_t kWritable = BitRange(63, 12) | Bit(6) | BitRange(5, 0);
};

// ---------------------------------------------------------------------------
// FSTS_REG (11.4.7.1), FECTL_REG (11.4.7.2), and the event registers.
// ---------------------------------------------------------------------------
struct Fsts {
  static constexpr uint32_t kPfo = 1u << 0;  // RW1C primary fault overflow
  static constexpr uint32_t kPpf = 1u << 1;  // RO   primary pending fault
  static constexpr uint32_t kAfo = 1u << 2;  // (advanced logging: unused)
  static constexpr uint32_t kApf = 1u << 3;
  static constexpr uint32_t kIqe = 1u << 4;  // RW1C invalidation queue error
  static constexpr uint32_t kIce = 1u << 5;  // RW1C invalidation completion err
  static constexpr uint32_t kIte = 1u << 6;  // RW1C invalidation time-out
  static constexpr unsigned kFriShift = 8;   // 15:8 RO fault record index
  static constexpr uint32_t kRw1c = kPfo | kIqe | kIce | kIte;
};
// FECTL_REG and IECTL_REG share the layout.
struct EventControl {
  static constexpr uint32_t kIm = 1u << 31;  // RW interrupt mask (reset 1)
  static constexpr uint32_t kIp = 1u << 30;  // RO interrupt pending
};
// ICS_REG (11.4.9.4).
inline constexpr uint32_t kIcsIwc = 1;  // RW1C invalidation wait complete

// FEADDR/IEADDR: 31:2 message address. FEDATA/IEDATA: 15:0 message data
// (31:16 extended data, not supported: reads 0). FEUADDR/IEUADDR: upper
// address, meaningful only with ECAP.EIM=1 (x2APIC destination 31:8).
inline constexpr uint32_t kEventAddrWritable = 0xFFFFFFFC;
inline constexpr uint32_t kEventDataWritable = 0x0000FFFF;

// ---------------------------------------------------------------------------
// Invalidation queue registers (11.4.9).
// ---------------------------------------------------------------------------
// IQH/IQT: 18:4 offset of a 128-bit slot in the queue.
inline constexpr uint64_t kIqOffsetMask = BitRange(18, 4);
struct Iqa {
  static constexpr uint64_t kDw = Bit(11);  // 256-bit descriptors
  static constexpr uint64_t kWritable = BitRange(63, 12) | kDw | BitRange(2, 0);
  uint64_t raw = 0;
  constexpr uint64_t base() const { return raw & BitRange(63, 12); }
  constexpr bool dw() const { return raw & kDw; }
  constexpr unsigned qs() const { return Field(raw, 2, 0); }
  // 4 KiB * 2^QS.
  constexpr uint64_t size_bytes() const { return uint64_t{4096} << qs(); }
  constexpr uint64_t descriptor_bytes() const { return dw() ? 32 : 16; }
};
// IQERCD_REG (11.4.9.9, rev 4.0+), read-only:
//   63:48 ICESID  requester id of the invalid device-TLB invalidation
//                 completion that set FSTS.ICE (valid while ICE=1)
//   47:32 ITESID  source id of the device-TLB invalidation that timed out
//                 and set FSTS.ITE (valid while ITE=1)
//   3:0   IQEI    why FSTS.IQE was set (valid while IQE=1)
// Linux reads the three fields (dmar.h DMAR_IQER_REG_IQEI/ITESID/ICESID) and
// logs them in qi_dump_fault().
struct Iqercd {
  static constexpr unsigned kIcesidShift = 48;
  static constexpr unsigned kItesidShift = 32;
  static constexpr uint64_t kIqeiMask = BitRange(3, 0);
  static constexpr uint64_t kItesidMask = BitRange(47, 32);
  static constexpr uint64_t kIcesidMask = BitRange(63, 48);
};
// IQEI encodings, in the order of the spec's table (11.4.9.9); 8h-Fh are
// reserved.
enum class Iqei : uint8_t {
  kInfoNotAvailable = 0,
  kInvalidTail = 1,        // IQT beyond the queue size (IQA.QS)
  kDescriptorFetch = 2,    // fetching the descriptor failed (queue outside memory)
  kInvalidType = 3,        // invalid or unsupported descriptor type
  kReservedField = 4,      // reserved field set in a valid descriptor type
  kInvalidWidth = 5,       // descriptor type needs the other IQA.DW
  kTailMisaligned = 6,     // IQA.DW=1 (256-bit descriptors) and IQT[4]=1
  kInvalidWait = 7,        // invalid invalidation wait descriptor (status
                           // address not writable)
};
static_assert(static_cast<int>(Iqei::kInvalidWait) == 7);

// ---------------------------------------------------------------------------
// IRTA_REG (11.4.10.1): 63:12 IRTA, 11 EIME, 3:0 S (2^(S+1) entries).
// ---------------------------------------------------------------------------
struct Irta {
  static constexpr uint64_t kEime = Bit(11);
  static constexpr uint64_t kWritable = BitRange(63, 12) | kEime | BitRange(3, 0);
  uint64_t raw = 0;
  constexpr uint64_t base() const { return raw & BitRange(63, 12); }
  constexpr bool eime() const { return raw & kEime; }
  constexpr unsigned s() const { return Field(raw, 3, 0); }
  constexpr uint32_t entries() const { return uint32_t{2} << s(); }
};
static_assert(Irta{0xF}.entries() == 65536 && Irta{0}.entries() == 2);

// ---------------------------------------------------------------------------
// Fault recording register (11.4.7.6), 128 bits:
//   127 F (RW1C)  126 T1 (0 write, 1 read)  125:124 AT  123:104 PV
//   103:96 FR (fault reason)  95 PP  94 EXE  93 PRIV  92 T2  79:64 SID
//   63:12 FI: faulting page address (DMA faults); for interrupt-remapping
//         faults FI[63:48] is the interrupt_index (7.1.2; Linux prints
//         "fault index" from bits 63:48).
// ---------------------------------------------------------------------------
struct FaultRecord {
  uint64_t fault_info = 0;  // the low qword (bits 11:0 always 0)
  uint16_t source_id = 0;
  uint8_t reason = 0;
  bool read = false;         // T1
  bool pasid_present = false;
  uint32_t pasid = 0;        // 20 bits

  static FaultRecord Interrupt(uint16_t source_id, uint16_t index,
                               uint8_t reason) {
    FaultRecord r;
    r.fault_info = uint64_t{index} << 48;
    r.source_id = source_id;
    r.reason = reason;
    return r;
  }
  static FaultRecord Dma(uint16_t source_id, uint64_t address, bool read,
                         uint8_t reason) {
    FaultRecord r;
    r.fault_info = address & BitRange(63, 12);
    r.source_id = source_id;
    r.reason = reason;
    r.read = read;
    return r;
  }
  constexpr uint64_t Low() const { return fault_info & BitRange(63, 12); }
  // High qword without the F bit.
  constexpr uint64_t High() const {
    return (read ? Bit(62) : 0) | (uint64_t{pasid & 0xFFFFF} << 40) |
           (uint64_t{reason} << 32) | (pasid_present ? Bit(31) : 0) |
           source_id;
  }
  static constexpr uint64_t kF = Bit(63);  // in the high qword
  constexpr uint16_t interrupt_index() const { return fault_info >> 48; }
  friend bool operator==(const FaultRecord&, const FaultRecord&) = default;
};

// ---------------------------------------------------------------------------
// Fault reasons ([VT-d] 7.1.3, "Fault Reasons" table; interrupt remapping).
// ---------------------------------------------------------------------------
namespace fault {
inline constexpr uint8_t kIrRequestReserved = 0x20;
inline constexpr uint8_t kIrIndexOutOfRange = 0x21;
inline constexpr uint8_t kIrEntryNotPresent = 0x22;
inline constexpr uint8_t kIrTableAccess = 0x23;
inline constexpr uint8_t kIrEntryReserved = 0x24;
inline constexpr uint8_t kIrCompatBlocked = 0x25;
inline constexpr uint8_t kIrSourceId = 0x26;
// Rev 4.x: error accessing the posted-interrupt descriptor.
inline constexpr uint8_t kIrPostedDescriptorAccess = 0x27;
}  // namespace fault

// "Qualified" faults can be suppressed by the IRTE's FPD bit (7.1.3 table,
// "Qualified" column): those detected after a valid IRTE fetch.
constexpr bool IsQualifiedInterruptFault(uint8_t reason) {
  return reason == fault::kIrEntryNotPresent ||
         reason == fault::kIrEntryReserved || reason == fault::kIrSourceId ||
         reason == fault::kIrPostedDescriptorAccess;
}

// Linux's reason string (dmar_get_fault_reason()): 0x20-0x26 interrupt
// remapping, 0x00-0x0D legacy DMA remapping, "Unknown" otherwise.
std::string_view LinuxFaultReasonString(uint8_t reason);
// Whether Linux classifies `reason` as an interrupt-remapping fault.
constexpr bool IsLinuxInterruptRemapReason(uint8_t reason) {
  return reason >= 0x20 && reason <= 0x26;
}
// The line Linux's dmar_fault_do_one() prints for `record`, with the
// "DMAR: " prefix, e.g.
//   DMAR: [INTR-REMAP] Request device [02:00.0] fault index 0x0 [fault reason 0x25] Blocked a compatibility format interrupt request
//   DMAR: [DMA Read NO_PASID] Request device [00:03.0] fault addr 0x1000 [fault reason 0x06] PTE Read access is not set
std::string LinuxFaultLine(const FaultRecord& record);

// ---------------------------------------------------------------------------
// Interrupt remapping table entry, 128 bits ([VT-d] 9.10 remapped format,
// IM=0; 9.11 posted format, IM=1).
//
// Remapped format (IM=0):
//   0 P   1 FPD   2 DM (1 logical)   3 RH   4 TM (1 level)   7:5 DLM
//   11:8 AVAIL   14:12 reserved   15 IM   23:16 V (vector)   31:24 reserved
//   63:32 DST: EIME=0: 47:40 = APIC id[7:0], 39:32 and 63:48 reserved;
//              EIME=1: 63:32 = x2APIC id[31:0]
//   79:64 SID   81:80 SQ   83:82 SVT   127:84 reserved
// Posted format (IM=1):
//   0 P   1 FPD   7:2 reserved   11:8 AVAIL   13:12 reserved   14 URG
//   15 IM=1   23:16 VV (virtual vector)   37:24 reserved
//   63:38 PDA[31:6]   79:64 SID   81:80 SQ   83:82 SVT   95:84 reserved
//   127:96 PDA[63:32]
// ---------------------------------------------------------------------------
struct Irte {
  uint64_t lo = 0;
  uint64_t hi = 0;

  // Source validation type (SVT, bits 83:82).
  static constexpr uint8_t kSvtNone = 0;
  static constexpr uint8_t kSvtRequesterId = 1;  // SID/SQ compare
  static constexpr uint8_t kSvtBusRange = 2;     // bus in [SID[15:8], SID[7:0]]

  constexpr bool present() const { return lo & Bit(0); }
  constexpr bool fpd() const { return lo & Bit(1); }
  constexpr bool dest_logical() const { return lo & Bit(2); }
  constexpr bool redirection_hint() const { return lo & Bit(3); }
  constexpr bool trigger_level() const { return lo & Bit(4); }
  constexpr uint8_t delivery_mode() const { return Field(lo, 7, 5); }
  constexpr bool posted() const { return lo & Bit(15); }  // IM
  constexpr uint8_t vector() const { return Field(lo, 23, 16); }
  constexpr uint32_t dst() const { return Field(lo, 63, 32); }
  // The destination APIC id: DST[15:8] in xAPIC mode, DST in x2APIC mode.
  constexpr uint32_t destination(bool eime) const {
    return eime ? dst() : (dst() >> 8) & 0xFF;
  }
  constexpr uint16_t sid() const { return Field(hi, 15, 0); }
  constexpr uint8_t sq() const { return Field(hi, 17, 16); }
  constexpr uint8_t svt() const { return Field(hi, 19, 18); }
  // Posted format.
  constexpr bool urgent() const { return lo & Bit(14); }
  constexpr uint64_t pda() const {
    return (Field(lo, 63, 38) << 6) | (Field(hi, 63, 32) << 32);
  }

  // Reserved bits that are set (fault 0x24 when non-zero). IM=1 is itself
  // reserved when posting is not supported (CAP.PI=0), as is SVT=11b.
  constexpr uint64_t ReservedLo(bool eime, bool posting_supported) const {
    if (posted()) {
      if (!posting_supported) return lo & (Bit(15) | BitRange(14, 12) | BitRange(31, 24));
      return lo & (BitRange(7, 2) | BitRange(13, 12) | BitRange(37, 24));
    }
    uint64_t mask = BitRange(14, 12) | BitRange(31, 24);
    if (!eime) mask |= BitRange(39, 32) | BitRange(63, 48);
    return lo & mask;
  }
  constexpr uint64_t ReservedHi(bool posting_supported) const {
    uint64_t mask = (posted() && posting_supported) ? BitRange(31, 20)
                                                    : BitRange(63, 20);
    return hi & mask;
  }
  constexpr bool HasReservedBits(bool eime, bool posting_supported) const {
    return ReservedLo(eime, posting_supported) != 0 ||
           ReservedHi(posting_supported) != 0 || svt() == 3;
  }

  // Builders (tests, guest-side helpers).
  struct RemappedFields {
    uint8_t vector = 0;
    uint32_t destination = 0;  // APIC id (placed per `eime`)
    bool eime = false;
    uint8_t delivery_mode = 0;
    bool dest_logical = false;
    bool redirection_hint = false;
    bool trigger_level = false;
    bool fpd = false;
    uint16_t sid = 0;
    uint8_t sq = 0;
    uint8_t svt = 0;
  };
  static constexpr Irte Remapped(const RemappedFields& f) {
    Irte e;
    e.lo = Bit(0) | (f.fpd ? Bit(1) : 0) | (f.dest_logical ? Bit(2) : 0) |
           (f.redirection_hint ? Bit(3) : 0) | (f.trigger_level ? Bit(4) : 0) |
           (uint64_t{f.delivery_mode & 7u} << 5) | (uint64_t{f.vector} << 16) |
           (uint64_t{f.eime ? f.destination : (f.destination & 0xFF) << 8}
            << 32);
    e.hi = uint64_t{f.sid} | (uint64_t{f.sq & 3u} << 16) |
           (uint64_t{f.svt & 3u} << 18);
    return e;
  }
  static constexpr Irte Posted(uint8_t virtual_vector, uint64_t pda,
                               bool urgent = false, uint16_t sid = 0,
                               uint8_t sq = 0, uint8_t svt = 0) {
    Irte e;
    e.lo = Bit(0) | (urgent ? Bit(14) : 0) | Bit(15) |
           (uint64_t{virtual_vector} << 16) | (Field(pda, 31, 6) << 38);
    e.hi = uint64_t{sid} | (uint64_t{sq & 3u} << 16) |
           (uint64_t{svt & 3u} << 18) | (Field(pda, 63, 32) << 32);
    return e;
  }
  friend bool operator==(const Irte&, const Irte&) = default;
};
static_assert(Irte::Remapped({.vector = 0x41, .destination = 2}).lo ==
              0x0000020000410001);
static_assert(Irte::Posted(0x30, 0x12345640).pda() == 0x12345640);

// Source-id qualifier mask (9.10 SQ): which requester-id bits SVT=01b
// compares. 00: all 16; 01: ignore bit 2; 10: ignore bits 2:1; 11: ignore
// bits 2:0.
constexpr uint16_t SourceIdMask(uint8_t sq) {
  constexpr uint16_t kMasks[4] = {0xFFFF, 0xFFFB, 0xFFF9, 0xFFF8};
  return kMasks[sq & 3];
}

// ---------------------------------------------------------------------------
// Posted-interrupt descriptor, 64 bytes, 64-byte aligned ([VT-d] 9.12):
//   255:0 PIR   256 ON   257 SN   279:272 NV   319:288 NDST
//   (NDST[15:8] = APIC id in xAPIC mode, 32-bit x2APIC id with EIME=1)
// ---------------------------------------------------------------------------
struct PostedDescriptor {
  static constexpr uint64_t kSize = 64;
  static constexpr uint64_t kControlOffset = 32;  // qword holding ON/SN/NV/NDST
  static constexpr uint64_t kOn = Bit(0);
  static constexpr uint64_t kSn = Bit(1);
  static constexpr uint8_t Nv(uint64_t control) { return Field(control, 23, 16); }
  static constexpr uint32_t Ndst(uint64_t control) {
    return Field(control, 63, 32);
  }
};

// ---------------------------------------------------------------------------
// Invalidation queue descriptors ([VT-d] 6.5.2). Type = qw0 bits 3:0 plus
// bits 11:9 as type[6:4]. Legacy (128-bit) layouts:
//   1 context-cache  qw0: 5:4 G (01 global, 10 domain, 11 device),
//                         31:16 DID, 47:32 SID, 49:48 FM
//   2 IOTLB          qw0: 5:4 G (01 global, 10 domain, 11 page), 6 DW,
//                         7 DR, 31:16 DID; qw1: 63:12 ADDR, 6 IH, 5:0 AM
//   3 device-TLB     qw0: 63:52 PFSID[15:4], 47:32 SID, 20:16 MIP,
//                         15:12 PFSID[3:0]; qw1: 63:12 ADDR, 0 S
//   4 IEC            qw0: 4 G (0 global, 1 index), 31:27 IM, 47:32 IIDX
//   5 wait           qw0: 4 IF, 5 SW, 6 FN, 7 PD, 63:32 status data;
//                    qw1: 63:2 status address
// ---------------------------------------------------------------------------
namespace qi {
inline constexpr uint8_t kContextCache = 1;
inline constexpr uint8_t kIotlb = 2;
inline constexpr uint8_t kDeviceTlb = 3;
inline constexpr uint8_t kIec = 4;
inline constexpr uint8_t kWait = 5;
constexpr uint8_t Type(uint64_t qw0) {
  return static_cast<uint8_t>(Field(qw0, 3, 0) | (Field(qw0, 11, 9) << 4));
}
// Reserved bits of each legacy descriptor (qw0, qw1).
inline constexpr uint64_t kCcReserved0 = BitRange(63, 50) | BitRange(15, 12) | BitRange(8, 6);
inline constexpr uint64_t kIotlbReserved0 = BitRange(63, 32) | BitRange(15, 12) | Bit(8);
inline constexpr uint64_t kIotlbReserved1 = BitRange(11, 7);
inline constexpr uint64_t kDevTlbReserved0 =
    BitRange(51, 48) | BitRange(31, 21) | BitRange(8, 4);
inline constexpr uint64_t kDevTlbReserved1 = BitRange(11, 1);
inline constexpr uint64_t kIecReserved0 = BitRange(63, 48) | BitRange(26, 12) | BitRange(8, 5);
// PD (bit 7) is reserved without page-request support (ECAP.PRS=0).
inline constexpr uint64_t kWaitReserved0 = BitRange(31, 12) | Bit(8) | Bit(7);
inline constexpr uint64_t kWaitReserved1 = BitRange(1, 0);
inline constexpr uint64_t kWaitIf = Bit(4);
inline constexpr uint64_t kWaitSw = Bit(5);
inline constexpr uint64_t kWaitFn = Bit(6);

// Builders (tests, guest-side helpers), as Linux's qi_* helpers encode them.
constexpr uint64_t IecGlobal() { return kIec; }
constexpr uint64_t IecIndex(uint16_t index, uint8_t mask) {
  return kIec | Bit(4) | (uint64_t{mask & 0x1Fu} << 27) |
         (uint64_t{index} << 32);
}
constexpr uint64_t Wait(bool status_write, bool interrupt, uint32_t data) {
  return kWait | (interrupt ? kWaitIf : 0) | (status_write ? kWaitSw : 0) |
         (uint64_t{data} << 32);
}
constexpr uint64_t ContextCache(uint8_t granularity, uint16_t did,
                                uint16_t sid, uint8_t fm) {
  return kContextCache | (uint64_t{granularity & 3u} << 4) |
         (uint64_t{did} << 16) | (uint64_t{sid} << 32) |
         (uint64_t{fm & 3u} << 48);
}
constexpr uint64_t Iotlb(uint8_t granularity, uint16_t did, bool dr, bool dw) {
  return kIotlb | (uint64_t{granularity & 3u} << 4) | (dw ? Bit(6) : 0) |
         (dr ? Bit(7) : 0) | (uint64_t{did} << 16);
}
// Device-TLB invalidation of `sid` (Linux qi_flush_dev_iotlb(), S=0).
constexpr uint64_t DeviceTlb(uint16_t sid, uint8_t mip = 0) {
  return kDeviceTlb | (uint64_t{mip & 0x1Fu} << 16) | (uint64_t{sid} << 32);
}
static_assert(Type(IecIndex(5, 1)) == kIec);
static_assert((DeviceTlb(0xFFFF, 0x1F) & kDevTlbReserved0) == 0);
}  // namespace qi

}  // namespace irqlab::vtd

#endif  // IRQLAB_IOMMU_VTD_REGS_H_
