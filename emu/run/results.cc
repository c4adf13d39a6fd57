#include "emu/run/results.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "emu/core/status_macros.h"
#include "emu/run/shard.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"

namespace irqlab {

using campaign::RunRecord;

namespace {

// The first line of `text`, without surrounding white space, at most 200
// bytes.
std::string FirstLine(absl::string_view text) {
  std::string line(absl::StripAsciiWhitespace(text.substr(0, text.find('\n'))));
  if (line.size() > 200) line = line.substr(0, 200) + "...";
  return line;
}

}  // namespace

// ----------------------------------------------------------- records --

std::optional<WorkerFailure> ParseWorkerPayload(const WorkerResult& w, double timeout_seconds,
                                                google::protobuf::MessageLite* message) {
  if (w.ok() && message->ParseFromString(w.payload)) return std::nullopt;
  message->Clear();
  return WorkerFailure{w.kind == WorkerResult::Kind::kTimedOut ? "timeout" : "crash",
                       absl::StrCat("worker ", w.ok() ? "exited without a valid result"
                                                      : w.Describe(timeout_seconds))};
}

// ------------------------------------------------------- results files --

std::string RecordToJsonLine(const RunRecord& r) {
  google::protobuf::util::JsonPrintOptions o;
  o.add_whitespace = false;
  o.always_print_primitive_fields = true;
  o.preserve_proto_field_names = true;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(r, &out, o);
  return out;
}

absl::StatusOr<std::vector<RunRecord>> ReadResultsFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrFormat("%s: cannot open results file", path));
  std::vector<RunRecord> records;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (absl::StripAsciiWhitespace(line).empty()) continue;
    RunRecord r;
    const auto st = google::protobuf::util::JsonStringToMessage(line, &r);
    if (!st.ok()) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s:%d: not a campaign record: %s", path, n,
          FirstLine(std::string(st.message()))));
    }
    records.push_back(std::move(r));
  }
  if (in.bad()) return absl::DataLossError(absl::StrFormat("%s: read error", path));
  return records;
}

absl::Status WriteResultsFile(const std::string& path, const std::vector<RunRecord>& records) {
  const std::string tmp = absl::StrCat(path, ".tmp");
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return absl::InvalidArgumentError(absl::StrFormat("%s: cannot write", path));
    for (const RunRecord& r : records) out << RecordToJsonLine(r) << '\n';
    out.close();
    if (!out) {
      std::remove(tmp.c_str());
      return absl::DataLossError(absl::StrFormat("%s: write error", tmp));
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: cannot write: %s", path, std::strerror(errno)));
  }
  return absl::OkStatus();
}

// --------------------------------------------------------------- merge --

absl::StatusOr<std::vector<RunRecord>> MergeResultsFiles(const std::vector<std::string>& paths,
                                                         MergeGaps* gaps) {
  std::map<uint64_t, std::pair<RunRecord, std::string>> by_seed;  // seed -> (record, file)
  std::optional<std::pair<std::string, std::string>> ref;  // (scenario, hash) of the first record
  std::string ref_path;
  std::set<std::pair<uint64_t, uint64_t>> ranges;
  for (const std::string& path : paths) {
    ASSIGN_OR_RETURN(std::vector<RunRecord> records, ReadResultsFile(path));
    for (RunRecord& r : records) {
      if (!ref.has_value()) {
        ref.emplace(r.scenario(), r.scenario_hash());
        ref_path = path;
      } else if (r.scenario() != ref->first || r.scenario_hash() != ref->second) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "%s has results of scenario \"%s\" (hash %s) but %s of scenario \"%s\" (hash %s): "
            "results of different scenarios cannot be merged",
            path, r.scenario(), r.scenario_hash(), ref_path, ref->first, ref->second));
      }
      if (auto it = by_seed.find(r.seed()); it != by_seed.end()) {
        std::string diff;
        bool same = false;
        {  // the report is complete when the differencer is gone
          google::protobuf::util::MessageDifferencer d;
          // proto3: an unset field is its default ("modified: passed: true -> false").
          d.set_message_field_comparison(
              google::protobuf::util::MessageDifferencer::EQUIVALENT);
          d.ReportDifferencesToString(&diff);
          same = d.Compare(it->second.first, r);
        }
        if (!same) {
          return absl::InvalidArgumentError(absl::StrFormat(
              "seed %d has conflicting records in %s and %s (%s)", r.seed(), it->second.second,
              path, absl::StripAsciiWhitespace(diff.substr(0, diff.find('\n')))));
        }
      }
      if (absl::StatusOr<SeedRange> range = ParseSeedRange(r.seeds()); range.ok()) {
        ranges.emplace(range->first, range->last);
      }
      const uint64_t seed = r.seed();
      by_seed.try_emplace(seed, std::move(r), path);
    }
  }
  if (gaps != nullptr) {
    *gaps = MergeGaps{};
    // Union of the ranges, then the seeds in it without a record.
    std::vector<std::pair<uint64_t, uint64_t>> merged;
    for (const auto& r : ranges) {
      if (!merged.empty() && r.first <= merged.back().second + 1) {
        merged.back().second = std::max(merged.back().second, r.second);
      } else {
        merged.push_back(r);
      }
    }
    auto note = [&](uint64_t a, uint64_t b) {  // seeds a..b are missing
      gaps->count += b - a + 1;
      for (uint64_t s = a; gaps->first.size() < 10; ++s) {
        gaps->first.push_back(s);
        if (s == b) break;
      }
    };
    for (const auto& [a, b] : merged) {
      uint64_t s = a;
      for (auto it = by_seed.lower_bound(a); s <= b; ++it) {
        if (it == by_seed.end() || it->first > b) {
          note(s, b);
          break;
        }
        if (it->first > s) note(s, it->first - 1);
        if (it->first == b) break;
        s = it->first + 1;
      }
    }
  }
  std::vector<RunRecord> out;
  out.reserve(by_seed.size());
  for (auto& [seed, rec] : by_seed) out.push_back(std::move(rec.first));
  return out;
}

}  // namespace irqlab
