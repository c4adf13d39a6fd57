// Seeds and shards of a campaign, and the hashes that make its records
// comparable across processes (`irqlab campaign --seeds=A..B`, `--shards=N`).
//
//   - Hashes: 64-bit FNV-1a of the text trace and of the scenario. Stable
//     across processes, builds and hosts (unlike absl::Hash), so a record
//     written by any worker, shard or machine can be compared with a replay.
//   - Seed ranges "A..B" (or one seed "N") and the shard of this process,
//     taken from the environment of the engine the campaign runs on
//     (GoogleTest/CTest, Kubernetes indexed Jobs, Slurm job arrays).
//   - Shard k of n runs the seeds with (seed - A) % n == k, so the shards
//     partition the range whatever n is; their seeds are computed by
//     arithmetic, never materialized for the whole range.
//
// Errors are absl::Status values (InvalidArgument, the message naming the
// flag or environment variable); nothing here aborts on bad input.
// Thread-safety: every function is pure except ProcessEnv(), whose lookup
// reads the process environment (std::getenv) and so must not race with
// setenv().
#ifndef IRQLAB_EMU_RUN_SHARD_H_
#define IRQLAB_EMU_RUN_SHARD_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "emu/run/scenario.pb.h"

namespace irqlab {

// ---------------------------------------------------------------- hashing --

// 64-bit FNV-1a; `h` continues a previous hash. Stable across processes,
// builds and hosts (unlike absl::Hash).
inline constexpr uint64_t kFnv1a64Offset = 0xcbf29ce484222325ull;
uint64_t Fnv1a64(absl::string_view data, uint64_t h = kFnv1a64Offset);
// FNV-1a 64 of the text trace as `--trace` writes it: every line followed by
// '\n'.
uint64_t TraceHash(const std::vector<std::string>& trace_lines);
// 16 lowercase hex digits.
std::string HashHex(uint64_t h);
// FNV-1a 64 of the scenario in canonical text format, as HashHex.
std::string ScenarioHash(const scenario::Scenario& s);

// ------------------------------------------------------ seeds and shards --

struct SeedRange {
  uint64_t first = 0;
  uint64_t last = 0;  // inclusive
  uint64_t size() const { return last - first + 1; }
  std::string ToString() const;  // "A..B"
};
// "A..B" (A <= B) or "N" (= N..N); decimal. At most kMaxSeeds seeds.
// InvalidArgument (saying what to write instead) for anything else.
inline constexpr uint64_t kMaxSeeds = 1'000'000'000;
absl::StatusOr<SeedRange> ParseSeedRange(absl::string_view text);

struct Shard {
  uint64_t index = 0;
  uint64_t count = 1;
  std::string source;  // where index/count came from ("" = not sharded)
  std::string ToString() const;  // "shard 2 of 4 (GTEST_SHARD_INDEX/...)"
};

// Returns an environment variable's value, or nullopt when it is unset.
using EnvLookup = std::function<std::optional<std::string>(const char* name)>;
// The process environment (std::getenv).
EnvLookup ProcessEnv();

// Picks the shard of this process. The first source that sets an index wins:
//   1. GTEST_SHARD_INDEX of GTEST_TOTAL_SHARDS (CTest, Bazel, gtest-parallel)
//   2. JOB_COMPLETION_INDEX (Kubernetes indexed Job) of the count given by
//      `shards_flag` (--shards=N) or else IRQLAB_TOTAL_SHARDS
//   3. SLURM_ARRAY_TASK_ID of SLURM_ARRAY_TASK_COUNT; the index is
//      (ID - SLURM_ARRAY_TASK_MIN) / SLURM_ARRAY_TASK_STEP (MIN 0 and STEP 1
//      when unset)
//   4. none: shard 0 of 1.
// A count from --shards/IRQLAB_TOTAL_SHARDS must agree with the count of the
// source in use (and without an index source it is an error). Errors
// (InvalidArgument, naming the variables): an index without its count or
// the reverse, a value that is not a decimal number, count 0, index >= count.
// Empty variables count as unset.
absl::StatusOr<Shard> ResolveShard(const EnvLookup& env, std::optional<uint64_t> shards_flag);

// The seeds of `shard`: those with (seed - range.first) % count == index,
// ascending; how many there are (0 for count 0); the i-th of them.
// ShardSeed REQUIRES: i < ShardSize(range, shard).
std::vector<uint64_t> ShardSeeds(const SeedRange& range, const Shard& shard);
uint64_t ShardSize(const SeedRange& range, const Shard& shard);
uint64_t ShardSeed(const SeedRange& range, const Shard& shard, uint64_t i);

}  // namespace irqlab

#endif  // IRQLAB_EMU_RUN_SHARD_H_
