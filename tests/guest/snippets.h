// Guest code for the vCPU tests and benchmarks, assembled with nasm from
// tests/guest/*.asm at build time (tests/guest_snippets.cmake).
#ifndef IRQLAB_TESTS_GUEST_SNIPPETS_H_
#define IRQLAB_TESTS_GUEST_SNIPPETS_H_

#include <cstdint>
#include <string_view>

namespace irqlab::testing {

// The flat binary assembled from tests/guest/<name>.asm, or an empty view if
// there is no such snippet.
std::string_view GuestSnippet(std::string_view name);

}  // namespace irqlab::testing

#endif  // IRQLAB_TESTS_GUEST_SNIPPETS_H_
