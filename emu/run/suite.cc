#include "emu/run/suite.h"

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "emu/run/results.h"
#include "emu/run/scenario.h"

namespace irqlab {

using campaign::TestCaseResult;

namespace {

// At most the last `n` bytes of `text`, starting after a line break when
// there is one in them, behind a line "[... N bytes before]" if cut.
std::string TailLines(const std::string& text, size_t n) {
  if (text.size() <= n) return text;
  size_t start = text.size() - n;
  const size_t nl = text.find('\n', start);
  if (nl != std::string::npos && nl + 1 < text.size()) start = nl + 1;
  return absl::StrCat("[... ", start, " bytes before]\n", text.substr(start));
}

}  // namespace

absl::StatusOr<std::vector<SuiteCase>> FindSuiteCases(const std::vector<std::string>& paths) {
  namespace fs = std::filesystem;
  std::vector<SuiteCase> cases;
  auto dir_name = [](const fs::path& p) {
    fs::path abs = fs::absolute(p).lexically_normal();
    if (!abs.has_filename()) abs = abs.parent_path();
    std::string name = abs.filename().string();
    return name.empty() ? abs.string() : name;
  };
  for (const std::string& arg : paths) {
    std::error_code ec;
    const fs::file_status st = fs::status(arg, ec);
    if (ec || !fs::exists(st)) {
      return absl::NotFoundError(absl::StrFormat("%s: no such file or directory", arg));
    }
    if (!fs::is_directory(st)) {
      const fs::path p(arg);
      cases.push_back({arg, dir_name(p.has_parent_path() ? p.parent_path() : fs::path(".")),
                       p.stem().string()});
      continue;
    }
    std::vector<fs::path> found;
    fs::recursive_directory_iterator it(arg, fs::directory_options::skip_permission_denied, ec);
    for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (it->path().extension() == ".textproto" && it->is_regular_file(ec)) {
        found.push_back(it->path().lexically_relative(arg));
      }
    }
    if (ec) return absl::InvalidArgumentError(absl::StrFormat("%s: %s", arg, ec.message()));
    std::sort(found.begin(), found.end(), [](const fs::path& a, const fs::path& b) {
      return a.generic_string() < b.generic_string();
    });
    const std::string top = dir_name(arg);
    for (const fs::path& rel : found) {
      const std::string sub = rel.parent_path().generic_string();
      cases.push_back({(fs::path(arg) / rel).string(), sub.empty() ? top : top + "/" + sub,
                       rel.stem().string()});
    }
  }
  if (cases.empty()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("no *.textproto scenario files in %s", absl::StrJoin(paths, ", ")));
  }
  return cases;
}

TestCaseResult RunSuiteCase(const std::string& path) {
  TestCaseResult t;
  auto error = [&t](const absl::Status& status) {
    t.set_outcome("error");
    t.set_detail(std::string(status.message()));
    return t;
  };
  absl::StatusOr<scenario::Scenario> s = LoadScenarioFile(path);
  if (!s.ok()) return error(s.status());
  RunOptions o;
  o.base_dir = ScenarioBaseDir(path);
  absl::StatusOr<ScenarioReport> report = RunScenario(*s, o);
  if (!report.ok()) return error(report.status());
  SetRunFields(*report, &t);
  t.set_serial_tail(TailLines(report->serial, 4096));
  t.set_detail(report->run.detail);
  return t;
}

std::vector<SuiteResult> RunSuite(const std::vector<SuiteCase>& cases,
                                  const WorkerPoolOptions& pool,
                                  const std::function<TestCaseResult(const std::string&)>& runner,
                                  const std::function<void(const SuiteResult&)>& on_result) {
  std::vector<SuiteResult> results;
  results.reserve(cases.size());
  RunInWorkers(
      cases.size(), pool, [&](size_t i) { return runner(cases[i].path).SerializeAsString(); },
      [&](size_t i, WorkerResult w) {
        TestCaseResult r;
        if (const std::optional<WorkerFailure> failure =
                ParseWorkerPayload(w, pool.timeout_seconds, &r)) {
          r.set_outcome(failure->outcome);
          r.set_detail(failure->detail);
          r.set_worker_stderr(w.stderr_tail);
        }
        results.push_back({cases[i], std::move(r), w.wall_seconds});
        if (on_result) on_result(results.back());
        return true;
      });
  return results;
}

std::string XmlEscape(absl::string_view s, bool attribute) {
  static constexpr char kReplacement[] = "\xEF\xBF\xBD";  // U+FFFD
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      switch (c) {
        case '&': out += "&amp;"; break;
        case '<': out += "&lt;"; break;
        case '>': out += "&gt;"; break;
        case '"': out += attribute ? "&quot;" : "\""; break;
        case '\'': out += attribute ? "&apos;" : "'"; break;
        case '\t': out += attribute ? "&#9;" : "\t"; break;
        case '\n': out += attribute ? "&#10;" : "\n"; break;
        case '\r': out += "&#13;"; break;  // a raw CR would be normalized away
        default:
          if (c < 0x20) {
            out += kReplacement;
          } else {
            out += static_cast<char>(c);
          }
      }
      ++i;
      continue;
    }
    // A UTF-8 sequence: its length, the smallest code point it may encode.
    size_t len = 0;
    uint32_t cp = 0, min = 0;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2, cp = c & 0x1F, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3, cp = c & 0x0F, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4, cp = c & 0x07, min = 0x10000;
    }
    bool ok = len != 0 && i + len <= s.size();
    for (size_t k = 1; ok && k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      ok = (cc & 0xC0) == 0x80;
      cp = (cp << 6) | (cc & 0x3F);
    }
    ok = ok && cp >= min && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF) && cp != 0xFFFE &&
         cp != 0xFFFF;
    if (ok) {
      out.append(s.data() + i, len);
      i += len;
    } else {
      out += kReplacement;
      ++i;
    }
  }
  return out;
}

void WriteJUnit(const std::vector<SuiteResult>& results, double total_seconds, std::ostream& out) {
  auto is_error = [](const TestCaseResult& r) {
    return r.outcome() == "error" || r.outcome() == "crash" || r.outcome() == "timeout";
  };
  std::map<std::string, std::vector<const SuiteResult*>> suites;
  size_t failures = 0, errors = 0;
  for (const SuiteResult& r : results) {
    suites[r.test.classname].push_back(&r);
    if (is_error(r.result)) {
      ++errors;
    } else if (!r.result.passed()) {
      ++failures;
    }
  }
  out << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  out << absl::StrFormat(
      "<testsuites name=\"irqlab\" tests=\"%d\" failures=\"%d\" errors=\"%d\" time=\"%.3f\">\n",
      results.size(), failures, errors, total_seconds);
  for (const auto& [classname, cases] : suites) {
    size_t f = 0, e = 0;
    double t = 0;
    for (const SuiteResult* r : cases) {
      t += r->seconds;
      if (is_error(r->result)) {
        ++e;
      } else if (!r->result.passed()) {
        ++f;
      }
    }
    out << absl::StrFormat(
        "  <testsuite name=\"%s\" tests=\"%d\" failures=\"%d\" errors=\"%d\" skipped=\"0\" "
        "time=\"%.3f\">\n",
        XmlEscape(classname, true), cases.size(), f, e, t);
    for (const SuiteResult* r : cases) {
      out << absl::StrFormat("    <testcase name=\"%s\" classname=\"%s\" file=\"%s\" time=\"%.3f\"",
                             XmlEscape(r->test.name, true), XmlEscape(classname, true),
                             XmlEscape(r->test.path, true), r->seconds);
      const TestCaseResult& res = r->result;
      if (res.passed() && res.serial_tail().empty() && res.worker_stderr().empty()) {
        out << "/>\n";
        continue;
      }
      out << ">\n";
      if (is_error(res)) {
        out << absl::StrFormat("      <error message=\"%s\" type=\"%s\">%s</error>\n",
                               XmlEscape(res.detail(), true), XmlEscape(res.outcome(), true),
                               XmlEscape(res.detail()));
      } else if (!res.passed()) {
        const std::string all = absl::StrJoin(res.failed(), "\n");
        out << absl::StrFormat(
            "      <failure message=\"%s\" type=\"expectation\">%s</failure>\n",
            XmlEscape(absl::StrJoin(res.failed(), "; "), true), XmlEscape(all));
      }
      if (!res.serial_tail().empty()) {
        out << "      <system-out>" << XmlEscape(res.serial_tail()) << "</system-out>\n";
      }
      if (!res.worker_stderr().empty()) {
        out << "      <system-err>" << XmlEscape(res.worker_stderr()) << "</system-err>\n";
      }
      out << "    </testcase>\n";
    }
    out << "  </testsuite>\n";
  }
  out << "</testsuites>\n";
}

}  // namespace irqlab
