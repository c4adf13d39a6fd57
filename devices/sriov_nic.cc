#include "devices/sriov_nic.h"

#include <algorithm>

#include "absl/strings/str_format.h"

namespace irqlab {

namespace {

PciFunction::Identity NicIdentity() {
  return PciFunction::Identity{.vendor_id = SriovNic::kVendorId,
                               .device_id = SriovNic::kDeviceId,
                               .class_code = 0x020000,
                               .revision = 1,
                               .subsystem_vendor_id = SriovNic::kVendorId,
                               .subsystem_id = SriovNic::kDeviceId,
                               .interrupt_pin = 1};
}

}  // namespace

SriovNic::SriovNic(EventQueue* events, const Options& options)
    : PciFunction("irqlab-nic", NicIdentity()), events_(events), options_(options) {
  // Fixed layout: none of these can fail.
  (void)AddBar(0, BarSpec{.type = BarType::kMemory32, .size = kRegBarSize, .handler = this});
  (void)AddBar(kMsixBar,
               BarSpec{.type = BarType::kMemory32, .size = kMsixBarSize, .handler = nullptr});
  (void)AddMsiCapability(
      MsiCapability::Options{.vectors = 1, .address64 = true, .per_vector_mask = true},
      kMsiCapOffset);
  (void)AddMsixCapability(MsixCapability::Options{.vectors = kMsixVectors,
                                                  .table_bar = kMsixBar,
                                                  .table_offset = kMsixTableOffset,
                                                  .pba_bar = kMsixBar,
                                                  .pba_offset = kMsixPbaOffset},
                          kMsixCapOffset);
}

SriovNic::~SriovNic() {
  if (events_ != nullptr) events_->Cancel(mbx_event_);
}

uint64_t SriovNic::Read(const AccessOrigin&, uint64_t offset, unsigned size) {
  if (size != 4) return AllOnes(size);
  switch (offset) {
    case kRegId:
      return kId;
    case kRegStatus:
      return msix_enabled() ? kStatusMsixEnabled : 0;
    case kRegMbxStatus:
      return mbx_status_;
    case kRegMbxResp:
      return mbx_resp_;
    case kRegMbxStats:
      return (answered_ & 0xFFFF) | (dropped_ & 0xFFFF) << 16;
    case kRegEicr:
      return eicr_;
    default:
      return 0;
  }
}

void SriovNic::Write(const AccessOrigin&, uint64_t offset, unsigned size, uint64_t value) {
  if (size != 4) return;
  const uint32_t v = static_cast<uint32_t>(value);
  switch (offset) {
    case kRegMbxReq:
      StartRequest(v);
      break;
    case kRegMbxStatus:
      mbx_status_ &= ~(v & kMbxDone);
      break;
    case kRegEics:
      RaiseCauses(v & ((1u << kMsixVectors) - 1));
      break;
    case kRegEicr:
      eicr_ &= ~v;
      if (!msix_enabled() && !msi_enabled()) SetIntxLevel(eicr_ != 0);
      break;
    default:
      break;
  }
}

void SriovNic::StartRequest(uint32_t request) {
  if (mbx_status_ & kMbxBusy) {
    Trace(trace::DEVICE,
          absl::StrFormat("%s: mailbox request 0x%08x ignored: firmware busy with 0x%08x", name(),
                          request, request_));
    return;
  }
  request_ = request;
  mbx_status_ = (mbx_status_ & ~kMbxDone) | kMbxBusy;
  Trace(trace::DEVICE, absl::StrFormat("%s: mailbox request 0x%08x to the firmware", name(),
                                       request));
  mbx_event_ = events_->Schedule(std::max(Now(), events_->now()) + options_.mailbox_latency,
                                 EventPriority::kDeviceCompletion, "irqlab-nic: mailbox",
                                 [this] { FinishRequest(); });
}

void SriovNic::FinishRequest() {
  mbx_event_ = EventQueue::kInvalidEventId;
  mbx_status_ &= ~kMbxBusy;
  if (!msix_enabled()) {
    // The firmware bug: it answers on the mailbox vector only, and without
    // MSI-X enabled it silently forgets the request.
    ++dropped_;
    Trace(trace::DEVICE,
          absl::StrFormat("%s: firmware dropped mailbox request 0x%08x: MSI-X is disabled on "
                          "the function",
                          name(), request_));
    return;
  }
  ++answered_;
  mbx_resp_ = request_ | kMbxAck;
  mbx_status_ |= kMbxDone;
  eicr_ |= 1u << kMailboxVector;
  const SignalResult r = SignalMsix(kMailboxVector);
  Trace(trace::DEVICE,
        absl::StrFormat("%s: firmware answered mailbox request 0x%08x with 0x%08x, MSI-X entry "
                        "%u: %s",
                        name(), request_, mbx_resp_, kMailboxVector, SignalResultName(r)));
}

void SriovNic::RaiseCauses(uint32_t causes) {
  eicr_ |= causes;
  for (unsigned i = 0; i < kMsixVectors; ++i) {
    if (!(causes & (1u << i))) continue;
    // Masked (pending) or blocked messages are the capability's business.
    if (msix_enabled()) {
      static_cast<void>(SignalMsix(i));
    } else if (msi_enabled()) {
      static_cast<void>(SignalMsi(0));
    }
  }
  if (!msix_enabled() && !msi_enabled()) SetIntxLevel(eicr_ != 0);
}

}  // namespace irqlab
