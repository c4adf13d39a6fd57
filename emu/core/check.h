// IRQLAB_DCHECK(condition): checks a host-side contract (a `REQUIRES:` in a
// header) in the sanitizer and fuzz builds, where a broken contract should
// stop the run at once with the file, line and condition; compiled to nothing
// (the condition is not evaluated) in the normal build, where the hot path
// must not pay for it. CMake defines IRQLAB_DCHECK_ENABLED for
// -DIRQLAB_SANITIZE=... and -DIRQLAB_FUZZ=ON (CMakeLists.txt).
//
// Only for the host's own mistakes: a guest (or device firmware) may write
// anything anywhere and must get hardware behaviour, never a DCHECK.
//
//   uint8_t* GuestRam::At(uint64_t addr, uint64_t len) {
//     IRQLAB_DCHECK(Contains(addr, len));
//     ...
#ifndef IRQLAB_EMU_CORE_CHECK_H_
#define IRQLAB_EMU_CORE_CHECK_H_

#include <cstdio>
#include <cstdlib>

namespace irqlab::internal {

[[noreturn]] inline void DcheckFailed(const char* condition, const char* file,
                                      int line) {
  std::fprintf(stderr, "%s:%d: IRQLAB_DCHECK failed: %s\n", file, line,
               condition);
  std::abort();
}

}  // namespace irqlab::internal

#if defined(IRQLAB_DCHECK_ENABLED)
#define IRQLAB_DCHECK(condition)                                        \
  ((condition) ? static_cast<void>(0)                                   \
               : ::irqlab::internal::DcheckFailed(#condition, __FILE__, \
                                                  __LINE__))
#else
#define IRQLAB_DCHECK(condition) static_cast<void>(sizeof(!(condition)))
#endif

#endif  // IRQLAB_EMU_CORE_CHECK_H_
