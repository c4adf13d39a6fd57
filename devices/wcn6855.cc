#include "devices/wcn6855.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "firmware-stubs/wcn6855_firmware.h"

namespace irqlab {

// The firmware map of wcn6855_regs.h is the one FirmwareCpu implements.
static_assert(FirmwareCpu::kRomBase == WCN_FW_ROM && FirmwareCpu::kRomSize == WCN_FW_ROM_SIZE);
static_assert(FirmwareCpu::kRamBase == WCN_FW_RAM && FirmwareCpu::kRamSize == WCN_FW_RAM_SIZE);
static_assert(FirmwareCpu::kDevRegsBase == WCN_FW_DEVREGS &&
              FirmwareCpu::kDevRegsSize == WCN_BAR0_SIZE);
static_assert(FirmwareCpu::kOutboundBase == WCN_FW_OUTBOUND);

namespace {

constexpr uint32_t kControlBlockSize = 0x1000;
constexpr uint32_t kScratchEnd = WCN_REG_FW_SCRATCH + 0x100;

PciFunction::Identity WcnIdentity() {
  return PciFunction::Identity{.vendor_id = WCN_VENDOR_ID,
                               .device_id = WCN_DEVICE_ID,
                               .class_code = WCN_CLASS_CODE,
                               .revision = 0x01,
                               .subsystem_vendor_id = 0,
                               .subsystem_id = 0,
                               .interrupt_pin = 0};
}

}  // namespace

std::string_view Wcn6855::SourceName(unsigned source) {
  static constexpr std::string_view kNames[kNumSources] = {
      "mhi", "ce0", "ce1", "ce2", "ce3", "ce4", "ce5",
      "ce6", "ce7", "dp0", "dp1", "dp2", "dp3"};
  return source < kNumSources ? kNames[source] : "?";
}

absl::StatusOr<std::unique_ptr<Wcn6855>> Wcn6855::Create(EventQueue* events,
                                                         const Options& options) {
  if (events == nullptr) return absl::InvalidArgumentError("wcn6855: needs an event queue");
  std::unique_ptr<Wcn6855> device(new Wcn6855(events, options));
  absl::Span<const uint8_t> image =
      options.firmware.empty() ? Wcn6855FirmwareImage() : options.firmware;
  absl::StatusOr<std::unique_ptr<FirmwareCpu>> cpu =
      FirmwareCpu::Create(image, &device->fw_regs_, &device->outbound_);
  if (!cpu.ok()) {
    return absl::Status(cpu.status().code(),
                        absl::StrCat("wcn6855 firmware: ", cpu.status().message()));
  }
  device->cpu_ = *std::move(cpu);
  return device;
}

Wcn6855::Wcn6855(EventQueue* events, const Options& options)
    : PciFunction("wcn6855", WcnIdentity()),
      events_queue_(events),
      options_(options),
      window_(WCN_WINDOW_SIZE, 0) {
  // Fixed layout: these cannot fail.
  (void)AddBar(0, BarSpec{.type = BarType::kMemory64, .size = kBar0Size,
                          .prefetchable = false, .handler = this});
  (void)AddMsiCapability(MsiCapability::Options{.vectors = WCN_MSI_MAX_VECTORS,
                                                .address64 = false,
                                                .per_vector_mask = false},
                         kMsiCapOffset);
}

Wcn6855::~Wcn6855() {
  events_queue_->Cancel(doorbell_event_);
  events_queue_->Cancel(timer_event_);
}

uint64_t Wcn6855::CurrentTime() const { return std::max(Now(), events_queue_->now()); }

// --- Register file. ---

uint64_t Wcn6855::Read(const AccessOrigin&, uint64_t offset, unsigned size) {
  return RegRead(View::kDriver, offset, size);
}

void Wcn6855::Write(const AccessOrigin&, uint64_t offset, unsigned size, uint64_t value) {
  RegWrite(View::kDriver, offset, size, value);
}

uint64_t Wcn6855::RegRead(View view, uint64_t offset, unsigned size) {
  if (size == 8) {
    return RegRead(view, offset, 4) | RegRead(view, offset + 4, 4) << 32;
  }
  if (size != 1 && size != 2 && size != 4) return 0;
  if (offset >= WCN_WINDOW_BASE && offset + size <= WCN_WINDOW_BASE + WCN_WINDOW_SIZE) {
    uint64_t v = 0;
    for (unsigned i = 0; i < size; ++i) {
      v |= uint64_t{window_[offset - WCN_WINDOW_BASE + i]} << (8 * i);
    }
    return v;
  }
  if (offset < kControlBlockSize && (offset & 3) + size <= 4) {
    const uint32_t reg = ControlRead(view, static_cast<uint32_t>(offset & ~uint64_t{3}));
    return (reg >> (8 * (offset & 3))) & AllOnes(size);
  }
  return 0;
}

void Wcn6855::RegWrite(View view, uint64_t offset, unsigned size, uint64_t value) {
  if (size == 8) {
    RegWrite(view, offset, 4, value & 0xFFFFFFFF);
    RegWrite(view, offset + 4, 4, value >> 32);
    return;
  }
  if (size != 1 && size != 2 && size != 4) return;
  if (offset >= WCN_WINDOW_BASE && offset + size <= WCN_WINDOW_BASE + WCN_WINDOW_SIZE) {
    for (unsigned i = 0; i < size; ++i) {
      window_[offset - WCN_WINDOW_BASE + i] = static_cast<uint8_t>(value >> (8 * i));
    }
    return;
  }
  if (offset < kControlBlockSize && size == 4 && (offset & 3) == 0) {
    ControlWrite(view, static_cast<uint32_t>(offset), static_cast<uint32_t>(value));
  }
}

uint32_t Wcn6855::ControlRead(View view, uint32_t offset) const {
  const bool fw = view == View::kFirmware;
  switch (offset) {
    case WCN_REG_SOC_ID:
      return WCN_SOC_ID;
    case WCN_REG_CMD_ARG:
      return cmd_arg_;
    case WCN_REG_STATE:
      return state_;
    case WCN_REG_EVENTS:
      return events_;
    case WCN_REG_RESPONSE:
      return response_;
    case WCN_REG_IRQ_STATUS:
      return irq_status_;
    case WCN_REG_FW_CMD:
      return fw ? fw_cmd_ : 0;
    case WCN_REG_FW_ARG:
      return fw ? fw_arg_ : 0;
    default:
      break;
  }
  if (offset >= WCN_REG_FW_SCRATCH && offset < kScratchEnd) {
    return scratch_[(offset - WCN_REG_FW_SCRATCH) / 4];
  }
  return 0;  // DOORBELL (write-only) and reserved registers
}

void Wcn6855::ControlWrite(View view, uint32_t offset, uint32_t value) {
  const bool fw = view == View::kFirmware;
  if (offset >= WCN_REG_FW_SCRATCH && offset < kScratchEnd) {
    scratch_[(offset - WCN_REG_FW_SCRATCH) / 4] = value;
    return;
  }
  switch (offset) {
    case WCN_REG_DOORBELL:
      if (!fw) RingDoorbell(value);
      break;
    case WCN_REG_CMD_ARG:
      cmd_arg_ = value;
      break;
    case WCN_REG_STATE:
      if (fw) state_ = value;
      break;
    case WCN_REG_EVENTS:
      if (fw) events_ = value;
      break;
    case WCN_REG_RESPONSE:
      if (fw) response_ = value;
      break;
    case WCN_REG_IRQ_STATUS:
      irq_status_ = fw ? (irq_status_ | value) : (irq_status_ & ~value);
      break;
    case WCN_REG_FW_CMD:
      if (fw) fw_cmd_ = value;
      break;
    case WCN_REG_FW_ARG:
      if (fw) fw_arg_ = value;
      break;
    default:
      break;
  }
}

// --- Doorbell and firmware runs. ---

void Wcn6855::RingDoorbell(uint32_t value) {
  if (value == 0) return;  // not a command
  ++doorbells_;
  if (fw_cmd_ != 0) {
    ++doorbells_overwritten_;
    Trace(trace::DEVICE,
          absl::StrFormat("wcn6855: doorbell 0x%x overwrites command 0x%x the "
                          "firmware has not taken yet",
                          value, fw_cmd_),
          -1, WCN_REG_DOORBELL, value);
  }
  fw_cmd_ = value;
  fw_arg_ = cmd_arg_;
  if (hung_ || firmware_crashed()) {
    if ((value & 0xFF) != WCN_CMD_RESET) {
      Trace(trace::DEVICE,
            absl::StrFormat("wcn6855: doorbell 0x%x not serviced: firmware %s", value,
                            hung_ ? "hung" : "crashed"),
            -1, WCN_REG_DOORBELL, value);
      return;
    }
    // The RESET doorbell also resets the core: the firmware boots afresh.
    events_queue_->Cancel(timer_event_);
    timer_event_ = EventQueue::kInvalidEventId;
    hung_ = false;
    cpu_->Reset();
    Trace(trace::DEVICE, "wcn6855: firmware core reset by a RESET doorbell", -1,
          WCN_REG_DOORBELL, value);
  }
  if (doorbell_event_ != EventQueue::kInvalidEventId) return;  // run pending
  doorbell_event_ = events_queue_->Schedule(
      CurrentTime() + options_.doorbell_latency, EventPriority::kDeviceCompletion,
      "wcn6855: doorbell wakes firmware", [this] {
        doorbell_event_ = EventQueue::kInvalidEventId;
        RunFirmware();
      });
}

void Wcn6855::RunFirmware() {
  if (hung_ || firmware_crashed()) return;
  sleep_request_.reset();
  const FirmwareCpu::RunResult r = cpu_->Run(options_.run_budget);
  ++firmware_runs_;
  switch (r.stop) {
    case FirmwareCpu::Stop::kWfi:
      if (sleep_request_.has_value()) {
        events_queue_->Cancel(timer_event_);
        timer_event_ = EventQueue::kInvalidEventId;
        if (*sleep_request_ != 0) {
          timer_event_ = events_queue_->Schedule(
              CurrentTime() + *sleep_request_, EventPriority::kDeviceCompletion,
              "wcn6855: firmware timer", [this] {
                timer_event_ = EventQueue::kInvalidEventId;
                RunFirmware();
              });
        }
      }
      return;
    case FirmwareCpu::Stop::kBudget:
      hung_ = true;
      Trace(trace::DEVICE,
            absl::StrFormat("wcn6855: firmware did not reach WFI within %u "
                            "instructions: stopped (hung) at pc=0x%08x",
                            options_.run_budget, cpu_->pc()),
            -1, cpu_->pc(), r.instructions);
      break;
    case FirmwareCpu::Stop::kCrashed:
      Trace(trace::DEVICE,
            absl::StrFormat("wcn6855: firmware crashed: %s", cpu_->crash_reason()), -1,
            cpu_->pc(), r.instructions);
      break;
  }
  events_queue_->Cancel(timer_event_);
  timer_event_ = EventQueue::kInvalidEventId;
}

// --- Outbound engine. ---

uint64_t Wcn6855::Outbound::Read(const AccessOrigin&, uint64_t offset, unsigned size) {
  if (size != 4) return 0;
  const Wcn6855& d = *device_;
  switch (offset) {
    case WCN_OB_ADDR_LO:
      return d.ob_addr_lo_;
    case WCN_OB_ADDR_HI:
      return d.ob_addr_hi_;
    case WCN_OB_DATA:
      return d.ob_data_;
    case WCN_OB_NOW:
      return static_cast<uint32_t>(d.CurrentTime());
    case WCN_OB_SOURCE:
      return d.ob_source_;
    default:
      return 0;
  }
}

void Wcn6855::Outbound::Write(const AccessOrigin&, uint64_t offset, unsigned size,
                              uint64_t value) {
  if (size != 4) return;
  Wcn6855& d = *device_;
  const uint32_t v = static_cast<uint32_t>(value);
  switch (offset) {
    case WCN_OB_ADDR_LO:
      d.ob_addr_lo_ = v;
      break;
    case WCN_OB_ADDR_HI:
      d.ob_addr_hi_ = v;
      break;
    case WCN_OB_DATA:
      d.ob_data_ = v;
      break;
    case WCN_OB_GO:
      if (v & 1) d.EmitOutbound();
      break;
    case WCN_OB_SLEEP:
      d.sleep_request_ = v;
      break;
    case WCN_OB_SOURCE:
      d.ob_source_ = v;
      break;
    default:
      break;
  }
}

void Wcn6855::EmitOutbound() {
  const uint64_t address = uint64_t{ob_addr_hi_} << 32 | ob_addr_lo_;
  const uint32_t source = ob_source_;
  ob_source_ = WCN_OB_SOURCE_NONE;
  ++outbound_writes_;
  if (source < kNumSources) {
    ++fired_[source];
    Trace(trace::DEVICE,
          absl::StrFormat("wcn6855: firmware fired source %u (%s)", source,
                          SourceName(source)),
          -1, address, ob_data_);
  } else {
    Trace(trace::DEVICE, "wcn6855: firmware outbound write", -1, address, ob_data_);
  }
  const uint8_t bytes[4] = {static_cast<uint8_t>(ob_data_), static_cast<uint8_t>(ob_data_ >> 8),
                            static_cast<uint8_t>(ob_data_ >> 16),
                            static_cast<uint8_t>(ob_data_ >> 24)};
  // Failures (bus master off, master abort, IOMMU faults) are traced by the
  // PCI layer / the IOMMU; the firmware does not learn about them.
  (void)DmaWrite(address, bytes);
}

}  // namespace irqlab
