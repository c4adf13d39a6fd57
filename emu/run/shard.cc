#include "emu/run/shard.h"

#include <algorithm>
#include <cstdlib>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "emu/core/check.h"
#include "emu/core/status_macros.h"
#include "google/protobuf/text_format.h"

namespace irqlab {
namespace {

bool IsDecimal(absl::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace

// ---------------------------------------------------------------- hashing --

uint64_t Fnv1a64(absl::string_view data, uint64_t h) {
  for (unsigned char c : data) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

uint64_t TraceHash(const std::vector<std::string>& trace_lines) {
  uint64_t h = kFnv1a64Offset;
  for (const std::string& line : trace_lines) h = Fnv1a64("\n", Fnv1a64(line, h));
  return h;
}

std::string HashHex(uint64_t h) { return absl::StrFormat("%016x", h); }

std::string ScenarioHash(const scenario::Scenario& s) {
  std::string text;
  google::protobuf::TextFormat::PrintToString(s, &text);
  return HashHex(Fnv1a64(text));
}

// ------------------------------------------------------ seeds and shards --

std::string SeedRange::ToString() const { return absl::StrCat(first, "..", last); }

absl::StatusOr<SeedRange> ParseSeedRange(absl::string_view text) {
  const std::vector<absl::string_view> parts = absl::StrSplit(text, "..");
  SeedRange r;
  if (parts.size() > 2 || !IsDecimal(parts[0]) || !absl::SimpleAtoi(parts[0], &r.first) ||
      (parts.size() == 2 &&
       (!IsDecimal(parts[1]) || !absl::SimpleAtoi(parts[1], &r.last)))) {
    return absl::InvalidArgumentError(
        "not a seed range (write A..B with decimal A <= B, e.g. 1..1000, or one seed N)");
  }
  if (parts.size() == 1) r.last = r.first;
  if (r.last < r.first) {
    return absl::InvalidArgumentError(
        absl::StrFormat("empty seed range: %d > %d (write A..B with A <= B)", r.first, r.last));
  }
  if (r.last - r.first >= kMaxSeeds) {
    return absl::InvalidArgumentError(
        absl::StrFormat("more than %d seeds in one campaign; split it into shards", kMaxSeeds));
  }
  return r;
}

std::string Shard::ToString() const {
  if (source.empty()) return "not sharded";
  return absl::StrFormat("shard %d of %d (%s)", index, count, source);
}

EnvLookup ProcessEnv() {
  return [](const char* name) -> std::optional<std::string> {
    const char* v = std::getenv(name);
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  };
}

absl::StatusOr<Shard> ResolveShard(const EnvLookup& env, std::optional<uint64_t> shards_flag) {
  auto get = [&](const char* name) -> std::optional<std::string> {
    std::optional<std::string> v = env(name);
    if (v.has_value() && v->empty()) return std::nullopt;
    return v;
  };
  auto number = [](const std::string& what, const std::string& v) -> absl::StatusOr<uint64_t> {
    uint64_t n = 0;
    if (!IsDecimal(v) || !absl::SimpleAtoi(v, &n)) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s=%s: not a non-negative decimal number", what, v));
    }
    return n;
  };

  // A shard count given for JOB_COMPLETION_INDEX.
  std::optional<uint64_t> given;
  std::string given_name;
  if (shards_flag.has_value()) {
    given = *shards_flag;
    given_name = absl::StrCat("--shards=", *shards_flag);
  }
  if (std::optional<std::string> t = get("IRQLAB_TOTAL_SHARDS")) {
    ASSIGN_OR_RETURN(uint64_t n, number("IRQLAB_TOTAL_SHARDS", *t));
    if (given.has_value() && *given != n) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s contradicts IRQLAB_TOTAL_SHARDS=%d", given_name, n));
    }
    if (!given.has_value()) {
      given = n;
      given_name = absl::StrCat("IRQLAB_TOTAL_SHARDS=", n);
    }
  }

  Shard s;
  std::string index_name, count_name;  // "VAR=value" for messages
  const std::optional<std::string> gtest_index = get("GTEST_SHARD_INDEX");
  const std::optional<std::string> gtest_total = get("GTEST_TOTAL_SHARDS");
  const std::optional<std::string> job_index = get("JOB_COMPLETION_INDEX");
  const std::optional<std::string> slurm_id = get("SLURM_ARRAY_TASK_ID");
  const std::optional<std::string> slurm_count = get("SLURM_ARRAY_TASK_COUNT");
  bool count_from_given = false;
  if (gtest_index.has_value() || gtest_total.has_value()) {
    if (!gtest_index.has_value() || !gtest_total.has_value()) {
      return absl::InvalidArgumentError(
          gtest_index.has_value()
              ? absl::StrCat("GTEST_SHARD_INDEX=", *gtest_index, " is set without GTEST_TOTAL_SHARDS")
              : absl::StrCat("GTEST_TOTAL_SHARDS=", *gtest_total, " is set without GTEST_SHARD_INDEX"));
    }
    ASSIGN_OR_RETURN(s.index, number("GTEST_SHARD_INDEX", *gtest_index));
    ASSIGN_OR_RETURN(s.count, number("GTEST_TOTAL_SHARDS", *gtest_total));
    s.source = "GTEST_SHARD_INDEX/GTEST_TOTAL_SHARDS";
    index_name = absl::StrCat("GTEST_SHARD_INDEX=", *gtest_index);
    count_name = absl::StrCat("GTEST_TOTAL_SHARDS=", *gtest_total);
  } else if (job_index.has_value()) {
    if (!given.has_value()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "JOB_COMPLETION_INDEX=", *job_index,
          " needs the shard count (the Job's completions): --shards=N or IRQLAB_TOTAL_SHARDS=N"));
    }
    ASSIGN_OR_RETURN(s.index, number("JOB_COMPLETION_INDEX", *job_index));
    s.count = *given;
    count_from_given = true;
    s.source = absl::StrCat("JOB_COMPLETION_INDEX/",
                            shards_flag.has_value() ? "--shards" : "IRQLAB_TOTAL_SHARDS");
    index_name = absl::StrCat("JOB_COMPLETION_INDEX=", *job_index);
    count_name = given_name;
  } else if (slurm_id.has_value() || slurm_count.has_value()) {
    if (!slurm_id.has_value() || !slurm_count.has_value()) {
      return absl::InvalidArgumentError(
          slurm_id.has_value()
              ? absl::StrCat("SLURM_ARRAY_TASK_ID=", *slurm_id, " is set without SLURM_ARRAY_TASK_COUNT")
              : absl::StrCat("SLURM_ARRAY_TASK_COUNT=", *slurm_count,
                             " is set without SLURM_ARRAY_TASK_ID"));
    }
    ASSIGN_OR_RETURN(const uint64_t id, number("SLURM_ARRAY_TASK_ID", *slurm_id));
    ASSIGN_OR_RETURN(s.count, number("SLURM_ARRAY_TASK_COUNT", *slurm_count));
    uint64_t min = 0, step = 1;
    if (std::optional<std::string> m = get("SLURM_ARRAY_TASK_MIN")) {
      ASSIGN_OR_RETURN(min, number("SLURM_ARRAY_TASK_MIN", *m));
    }
    if (std::optional<std::string> st = get("SLURM_ARRAY_TASK_STEP")) {
      ASSIGN_OR_RETURN(step, number("SLURM_ARRAY_TASK_STEP", *st));
      if (step == 0) return absl::InvalidArgumentError("SLURM_ARRAY_TASK_STEP=0: must be >= 1");
    }
    if (id < min || (id - min) % step != 0) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "SLURM_ARRAY_TASK_ID=%d is not SLURM_ARRAY_TASK_MIN=%d plus a multiple of "
          "SLURM_ARRAY_TASK_STEP=%d (use a contiguous --array=A-B[:S])",
          id, min, step));
    }
    s.index = (id - min) / step;
    s.source = "SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT";
    index_name = min == 0 && step == 1
                     ? absl::StrCat("SLURM_ARRAY_TASK_ID=", id)
                     : absl::StrFormat("SLURM_ARRAY_TASK_ID=%d (index %d with SLURM_ARRAY_TASK_MIN=%d, "
                                       "SLURM_ARRAY_TASK_STEP=%d)",
                                       id, s.index, min, step);
    count_name = absl::StrCat("SLURM_ARRAY_TASK_COUNT=", *slurm_count);
  } else if (given.has_value()) {
    return absl::InvalidArgumentError(absl::StrCat(
        given_name,
        " needs a shard index in the environment: JOB_COMPLETION_INDEX (or GTEST_SHARD_INDEX, "
        "SLURM_ARRAY_TASK_ID)"));
  } else {
    return Shard{};
  }
  if (s.count == 0) return absl::InvalidArgumentError(absl::StrCat(count_name, ": no shards"));
  if (s.index >= s.count) {
    return absl::InvalidArgumentError(
        absl::StrCat(index_name, " is not below the shard count ", count_name));
  }
  if (given.has_value() && !count_from_given && *given != s.count) {
    return absl::InvalidArgumentError(absl::StrCat(given_name, " contradicts ", count_name));
  }
  return s;
}

uint64_t ShardSize(const SeedRange& range, const Shard& shard) {
  const uint64_t n = range.size();
  if (shard.count == 0 || shard.index >= n) return 0;
  return (n - shard.index - 1) / shard.count + 1;
}

uint64_t ShardSeed(const SeedRange& range, const Shard& shard, uint64_t i) {
  IRQLAB_DCHECK(i < ShardSize(range, shard));
  return range.first + shard.index + i * shard.count;
}

std::vector<uint64_t> ShardSeeds(const SeedRange& range, const Shard& shard) {
  std::vector<uint64_t> seeds(ShardSize(range, shard));
  for (uint64_t i = 0; i < seeds.size(); ++i) seeds[i] = ShardSeed(range, shard, i);
  return seeds;
}

}  // namespace irqlab
