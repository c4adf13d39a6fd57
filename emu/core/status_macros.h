// Project-local Status helpers. Debian 12's Abseil (20220623) ships no
// status_macros.h, so these two macros stand in for it.
#ifndef IRQLAB_EMU_CORE_STATUS_MACROS_H_
#define IRQLAB_EMU_CORE_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define IRQLAB_CONCAT_INNER_(a, b) a##b
#define IRQLAB_CONCAT_(a, b) IRQLAB_CONCAT_INNER_(a, b)

// RETURN_IF_ERROR(expr): returns the absl::Status of `expr` if it is not OK.
#define RETURN_IF_ERROR(expr)                     \
  do {                                            \
    ::absl::Status irqlab_status_ = (expr);       \
    if (!irqlab_status_.ok()) return irqlab_status_; \
  } while (0)

// ASSIGN_OR_RETURN(lhs, expr): evaluates the absl::StatusOr `expr`; on error
// returns its status, otherwise assigns (moves) the value into `lhs`.
#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL_(IRQLAB_CONCAT_(irqlab_statusor_, __LINE__), lhs, expr)
#define ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                           \
  if (!tmp.ok()) return tmp.status();          \
  lhs = std::move(tmp).value()

#endif  // IRQLAB_EMU_CORE_STATUS_MACROS_H_
