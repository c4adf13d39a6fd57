#include "emu/core/address_space.h"

#include <iterator>
#include <utility>

#include "absl/strings/str_format.h"
#include "emu/core/check.h"

namespace irqlab {

AddressSpace::AddressSpace(std::string name, uint64_t limit,
                           trace::Stage unmapped_stage, Tracer* tracer,
                           const Clock* clock)
    : name_(std::move(name)),
      limit_(limit),
      unmapped_stage_(unmapped_stage),
      tracer_(tracer),
      clock_(clock) {}

std::string AddressSpace::FormatRange(const Range& range) {
  return absl::StrFormat("\"%s\" [0x%x, 0x%x)", range.name, range.base,
                         range.end());
}

absl::Status AddressSpace::Map(uint64_t base, uint64_t size,
                               IoHandler* handler, std::string name) {
  if (size == 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: \"%s\" at 0x%x has size 0", name_, name, base));
  }
  if (size > ~uint64_t{0} - base) {
    // base + size does not fit in 64 bits: end() would wrap around.
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: \"%s\" at 0x%x with size 0x%x wraps around the address space",
        name_, name, base, size));
  }
  if (base >= limit_ || size > limit_ - base) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: \"%s\" at 0x%x with size 0x%x reaches beyond the end of the space "
        "(0x%x)",
        name_, name, base, size, limit_));
  }
  if (handler == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: \"%s\" has no handler", name_, name));
  }
  Range candidate{base, size, handler, std::move(name)};
  // Only two neighbours can overlap: the first range starting at or after
  // `base`, and the one before it.
  auto next = ranges_.lower_bound(base);
  if (next != ranges_.end() && next->second.base < candidate.end()) {
    return absl::AlreadyExistsError(
        absl::StrFormat("%s: %s overlaps %s", name_, FormatRange(candidate),
                        FormatRange(next->second)));
  }
  if (next != ranges_.begin()) {
    const Range& prev = std::prev(next)->second;
    if (prev.end() > base) {
      return absl::AlreadyExistsError(absl::StrFormat(
          "%s: %s overlaps %s", name_, FormatRange(candidate),
          FormatRange(prev)));
    }
  }
  ranges_.emplace_hint(next, base, std::move(candidate));
  last_hit_ = nullptr;
  return absl::OkStatus();
}

absl::Status AddressSpace::Unmap(uint64_t base) {
  auto it = ranges_.find(base);
  if (it == ranges_.end()) {
    return absl::NotFoundError(
        absl::StrFormat("%s: no range starts at 0x%x", name_, base));
  }
  ranges_.erase(it);
  last_hit_ = nullptr;
  return absl::OkStatus();
}

const AddressSpace::Range* AddressSpace::Find(uint64_t addr) const {
  // The candidate is the last range whose base is <= addr.
  auto it = ranges_.upper_bound(addr);
  if (it == ranges_.begin()) return nullptr;
  const Range& range = std::prev(it)->second;
  return range.Contains(addr) ? &range : nullptr;
}

const AddressSpace::Range* AddressSpace::Decode(uint64_t addr, unsigned size) {
  IRQLAB_DCHECK(IsLegalAccessSize(size));
  const Range* range = last_hit_;
  if (range == nullptr || !range->Contains(addr)) {
    range = Find(addr);
    if (range == nullptr) return nullptr;
    last_hit_ = range;
  }
  // addr < end(), so end() - addr >= 1 and cannot underflow.
  if (size > range->end() - addr) return nullptr;
  return range;
}

uint64_t AddressSpace::Read(const AccessOrigin& origin, uint64_t addr,
                            unsigned size) {
  if (!IsLegalAccessSize(size)) {
    Reject(origin, addr, size, ~uint64_t{0}, /*is_write=*/false);
    return ~uint64_t{0};
  }
  const Range* range = Decode(addr, size);
  if (range == nullptr) {
    Reject(origin, addr, size, AllOnes(size), /*is_write=*/false);
    return AllOnes(size);
  }
  return range->handler->Read(origin, addr - range->base, size);
}

void AddressSpace::Write(const AccessOrigin& origin, uint64_t addr,
                         unsigned size, uint64_t value) {
  const Range* range = IsLegalAccessSize(size) ? Decode(addr, size) : nullptr;
  if (range == nullptr) {
    Reject(origin, addr, size, value, /*is_write=*/true);
    return;
  }
  range->handler->Write(origin, addr - range->base, size, value);
}

void AddressSpace::Reject(const AccessOrigin& origin, uint64_t addr,
                          unsigned size, uint64_t data, bool is_write) {
  ++rejected_accesses_;
  if (tracer_ == nullptr || !tracer_->enabled()) return;
  // Say why: the three causes need different fixes in a scenario.
  std::string why;
  if (!IsLegalAccessSize(size)) {
    why = "illegal access size";
  } else if (const Range* range = Find(addr); range != nullptr) {
    why = "crosses the end of " + FormatRange(*range);
  } else {
    why = "nothing mapped";
  }
  const char* effect = is_write ? "dropped" : "reads all-ones";
  tracer_->Emit(clock_ != nullptr ? clock_->Now() : 0, unmapped_stage_,
                origin.cpu,
                absl::StrFormat("%s %s size=%u: %s, %s", name_,
                                is_write ? "write" : "read", size, why,
                                effect),
                /*vector=*/-1, addr, data, origin.requester_id);
}

void AddressSpace::ForEachRange(
    const std::function<void(const Range&)>& fn) const {
  for (const auto& [base, range] : ranges_) fn(range);
}

}  // namespace irqlab
