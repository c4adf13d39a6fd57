// Regression suites and JUnit (emu/run/suite.h): finding scenario files,
// running one, a crashing worker as a failure naming the signal, XML
// escaping and the JUnit document.
#include "emu/run/suite.h"

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_files.h"

namespace irqlab {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(SuiteTest, FindsScenarioFilesRecursivelySortedWithClassnames) {
  const std::string dir = TempDir() + "/suite";
  WriteFile(dir + "/zeta.textproto", "");
  WriteFile(dir + "/alpha.textproto", "");
  WriteFile(dir + "/vtd/ir.textproto", "");
  WriteFile(dir + "/vtd/deeper/x.textproto", "");
  WriteFile(dir + "/notes.txt", "");
  absl::StatusOr<std::vector<SuiteCase>> cases = FindSuiteCases({dir});
  ASSERT_TRUE(cases.ok()) << cases.status();
  std::vector<std::string> got;
  for (const SuiteCase& c : *cases) {
    got.push_back(absl::StrCat(c.path.substr(dir.size()), " ", c.classname, " ", c.name));
  }
  EXPECT_THAT(got, ElementsAre("/alpha.textproto suite alpha",
                               "/vtd/deeper/x.textproto suite/vtd/deeper x",
                               "/vtd/ir.textproto suite/vtd ir",
                               "/zeta.textproto suite zeta"));
  EXPECT_EQ(FindSuiteCases({dir + "/nope"}).status().code(), absl::StatusCode::kNotFound);
  std::filesystem::create_directories(dir + "/empty");
  EXPECT_EQ(FindSuiteCases({dir + "/empty"}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(SuiteTest, RunSuiteCaseReportsPassFailAndLoadErrors) {
  campaign::TestCaseResult r = RunSuiteCase(kHello);
  EXPECT_TRUE(r.passed());
  EXPECT_EQ(r.outcome(), "exit");
  EXPECT_THAT(r.serial_tail(), HasSubstr("PASS: hello"));

  const std::string dir = TempDir();
  WriteFile(dir + "/syntax.textproto", "name: {");
  r = RunSuiteCase(dir + "/syntax.textproto");
  EXPECT_FALSE(r.passed());
  EXPECT_EQ(r.outcome(), "error");
  EXPECT_THAT(r.detail(), HasSubstr("syntax.textproto:1:"));
}

// Rule: a scenario whose worker crashes is a failure with the signal named
// (and the worker's stderr kept); the suite goes on.
TEST(SuiteTest, CrashingScenarioIsAFailureNamingTheSignal) {
  const std::vector<SuiteCase> cases = {
      {"s/ok.textproto", "s", "ok"},
      {"s/segv.textproto", "s", "segv"},
      {"s/sanitizer.textproto", "s", "sanitizer"},
      {"s/ok2.textproto", "s", "ok2"}};
  WorkerPoolOptions pool;
  pool.jobs = 2;
  std::vector<std::string> streamed;
  const std::vector<SuiteResult> results = RunSuite(
      cases, pool,
      [](const std::string& path) {
        if (absl::StrContains(path, "segv")) kill(getpid(), SIGILL);  // not caught by ASan
        if (absl::StrContains(path, "sanitizer")) {
          fprintf(stderr, "==1==ERROR: AddressSanitizer: heap-use-after-free\n");
          _exit(1);
        }
        campaign::TestCaseResult r;
        r.set_outcome("exit");
        r.set_passed(true);
        return r;
      },
      [&](const SuiteResult& r) { streamed.push_back(r.test.name); });
  EXPECT_THAT(streamed, ElementsAre("ok", "segv", "sanitizer", "ok2"));
  ASSERT_EQ(results.size(), 4u);
  EXPECT_TRUE(results[0].result.passed());
  EXPECT_TRUE(results[3].result.passed());
  EXPECT_FALSE(results[1].result.passed());
  EXPECT_EQ(results[1].result.outcome(), "crash");
  EXPECT_THAT(results[1].result.detail(), HasSubstr("killed by SIGILL (Illegal instruction)"));
  EXPECT_EQ(results[2].result.outcome(), "crash");
  EXPECT_THAT(results[2].result.detail(), HasSubstr("exited with status 1 without a result"));
  EXPECT_THAT(results[2].result.worker_stderr(), HasSubstr("AddressSanitizer"));
  std::ostringstream xml;
  WriteJUnit(results, 1, xml);
  EXPECT_THAT(xml.str(), HasSubstr("errors=\"2\""));
  EXPECT_THAT(xml.str(), HasSubstr("<system-err>==1==ERROR: AddressSanitizer"));
}

TEST(XmlTest, EscapesMarkupControlsAndInvalidUtf8) {
  EXPECT_EQ(XmlEscape("a<b>&c\"d'e"), "a&lt;b&gt;&amp;c\"d'e");
  EXPECT_EQ(XmlEscape("a\"b'c", true), "a&quot;b&apos;c");
  EXPECT_EQ(XmlEscape("l1\nl2\tx\ry"), "l1\nl2\tx&#13;y");
  EXPECT_EQ(XmlEscape("l1\nl2\t", true), "l1&#10;l2&#9;");
  EXPECT_EQ(XmlEscape(std::string("nul\0bell\x07", 9)), "nul\xEF\xBF\xBD" "bell\xEF\xBF\xBD");
  EXPECT_EQ(XmlEscape("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"),
            "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80");  // valid UTF-8 kept
  EXPECT_EQ(XmlEscape("\xFF"), "\xEF\xBF\xBD");
  EXPECT_EQ(XmlEscape("\xC3"), "\xEF\xBF\xBD");                 // truncated
  EXPECT_EQ(XmlEscape("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");  // overlong
  EXPECT_EQ(XmlEscape("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
  EXPECT_EQ(XmlEscape("\xEF\xBF\xBE"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // U+FFFE
}

TEST(XmlTest, JUnitHasOneSuitePerClassnameWithFailuresAndErrors) {
  std::vector<SuiteResult> results(3);
  results[0].test = {"s/a.textproto", "s", "a"};
  results[0].result.set_passed(true);
  results[0].result.set_outcome("exit");
  results[0].seconds = 0.25;
  results[1].test = {"s/sub/b.textproto", "s/sub", "b"};
  results[1].result.set_outcome("exit");
  results[1].result.add_failed("serial contains \"<x>\" (not in the serial output)");
  results[1].result.add_failed("exit status 1 (exit status was 3)");
  results[1].result.set_serial_tail("boot\nFAIL & done\n");
  results[2].test = {"s/c.textproto", "s", "c"};
  results[2].result.set_outcome("crash");
  results[2].result.set_detail("worker killed by SIGSEGV (Segmentation fault)");
  std::ostringstream xml;
  WriteJUnit(results, 1.5, xml);
  const std::string x = xml.str();
  EXPECT_THAT(x, HasSubstr("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"));
  EXPECT_THAT(x, HasSubstr("<testsuites name=\"irqlab\" tests=\"3\" failures=\"1\" errors=\"1\" "
                           "time=\"1.500\">"));
  EXPECT_THAT(x, HasSubstr("<testsuite name=\"s\" tests=\"2\" failures=\"0\" errors=\"1\""));
  EXPECT_THAT(x, HasSubstr("<testsuite name=\"s/sub\" tests=\"1\" failures=\"1\" errors=\"0\""));
  EXPECT_THAT(x, HasSubstr("<testcase name=\"a\" classname=\"s\" file=\"s/a.textproto\" "
                           "time=\"0.250\"/>"));
  EXPECT_THAT(x, HasSubstr("<failure message=\"serial contains &quot;&lt;x&gt;&quot; (not in the "
                           "serial output); exit status 1 (exit status was 3)\" "
                           "type=\"expectation\">"));
  EXPECT_THAT(x, HasSubstr("<system-out>boot\nFAIL &amp; done\n</system-out>"));
  EXPECT_THAT(x, HasSubstr("<error message=\"worker killed by SIGSEGV (Segmentation fault)\" "
                           "type=\"crash\">"));
  EXPECT_TRUE(absl::EndsWith(x, "</testsuites>\n"));
  // Balanced: every opened element is closed.
  for (const char* tag : {"testsuites", "testsuite", "failure", "error", "system-out"}) {
    size_t open = 0, close = 0;
    for (size_t p = 0; (p = x.find(absl::StrCat("<", tag, " "), p)) != std::string::npos; ++p) ++open;
    for (size_t p = 0; (p = x.find(absl::StrCat("<", tag, ">"), p)) != std::string::npos; ++p) ++open;
    for (size_t p = 0; (p = x.find(absl::StrCat("</", tag, ">"), p)) != std::string::npos; ++p) ++close;
    EXPECT_EQ(open, close) << tag;
  }
}

}  // namespace
}  // namespace irqlab
