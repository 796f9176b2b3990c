#include "util/progress.h"

#include <chrono>
#include <cmath>
#include <limits>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace bottleneck {
namespace {

using namespace std::chrono_literals;

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  return lines;
}

ProgressBar::Options plain(double interval_s) {
  ProgressBar::Options o;
  o.label = "train";
  o.plain_interval_s = interval_s;
  return o;
}

TEST(ProgressTest, FormatDuration) {
  EXPECT_EQ(ProgressBar::format_duration(0), "0s");
  EXPECT_EQ(ProgressBar::format_duration(45), "45s");
  EXPECT_EQ(ProgressBar::format_duration(59.4), "59s");
  EXPECT_EQ(ProgressBar::format_duration(59.6), "1m00s");
  EXPECT_EQ(ProgressBar::format_duration(187), "3m07s");
  EXPECT_EQ(ProgressBar::format_duration(3599), "59m59s");
  EXPECT_EQ(ProgressBar::format_duration(3600), "1h00m");
  EXPECT_EQ(ProgressBar::format_duration(7500), "2h05m");
  EXPECT_EQ(ProgressBar::format_duration(100 * 3600 + 59), "100h00m");
  EXPECT_EQ(ProgressBar::format_duration(-1), "?");
  EXPECT_EQ(ProgressBar::format_duration(std::numeric_limits<double>::quiet_NaN()), "?");
  EXPECT_EQ(ProgressBar::format_duration(std::numeric_limits<double>::infinity()), "?");
}

// Plain mode prints the first update (so a log shows the job started), then nothing until the
// interval has passed, then the final line.
TEST(ProgressTest, PlainPrintsFirstUpdateAndFinish) {
  std::ostringstream out;
  {
    ProgressBar bar(1000, 0, plain(10), out);
    for (int i = 1; i <= 1000; ++i) bar.update(i);
    bar.finish();
  }
  const auto lines = lines_of(out.str());
  ASSERT_EQ(lines.size(), 2u) << out.str();
  EXPECT_EQ(lines[0].rfind("train 1/1000 (0%)", 0), 0u) << lines[0];
  EXPECT_EQ(lines[1].rfind("train 1000/1000 (100%)", 0), 0u) << lines[1];
  EXPECT_EQ(out.str().find('\r'), std::string::npos);
  EXPECT_EQ(out.str().find("\x1b"), std::string::npos);
}

TEST(ProgressTest, PlainRespectsInterval) {
  std::ostringstream out;
  ProgressBar bar(10000, 0, plain(0.05), out);
  int updates = 0;
  const auto end = std::chrono::steady_clock::now() + 300ms;
  while (std::chrono::steady_clock::now() < end) {
    bar.update(++updates);
    std::this_thread::sleep_for(2ms);
  }
  bar.finish();
  const auto lines = lines_of(out.str());
  // 300 ms at one line per 50 ms: the first, at most 6 more, and the final line.
  EXPECT_GE(updates, 20);
  EXPECT_GE(lines.size(), 3u) << out.str();
  EXPECT_LE(lines.size(), 8u) << out.str();
}

TEST(ProgressTest, HalfWayShowsFiftyPercent) {
  std::ostringstream out;
  ProgressBar bar(100, 0, plain(0), out);
  bar.update(50, "loss 0.0021");
  const std::string line = lines_of(out.str()).at(0);
  EXPECT_EQ(line, "train 50/100 (50%) | loss 0.0021");
}

TEST(ProgressTest, RateAndEta) {
  std::ostringstream out;
  ProgressBar bar(1000, 0, plain(0), out);
  bar.update(0);
  EXPECT_EQ(bar.rate(), 0);  // one update: no rate yet
  std::this_thread::sleep_for(60ms);
  bar.update(100);
  std::this_thread::sleep_for(60ms);
  bar.update(200);
  // 100 units per >= 60 ms: at most ~1667/s; sleeping longer on a busy machine only lowers it.
  EXPECT_GT(bar.rate(), 200);
  EXPECT_LT(bar.rate(), 1700);
  const auto lines = lines_of(out.str());
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0], "train 0/1000 (0%)");
  EXPECT_TRUE(std::regex_search(lines[2], std::regex(R"(^train 200/1000 \(20%\) \d+ it/s ETA \ds$)")))
      << lines[2];
  // ETA = remaining / rate.
  const double eta = 800 / bar.rate();
  EXPECT_NE(lines[2].find("ETA " + ProgressBar::format_duration(eta)), std::string::npos);
}

TEST(ProgressTest, StartOffsetDoesNotCountAsProgress) {
  std::ostringstream out;
  ProgressBar bar(1000, 900, plain(0), out);  // resumed at 900
  bar.update(900);
  std::this_thread::sleep_for(60ms);
  bar.update(910);
  EXPECT_GT(bar.rate(), 0);
  EXPECT_LT(bar.rate(), 10 / 0.06 + 1);
  EXPECT_NE(out.str().find("910/1000 (91%)"), std::string::npos);
}

TEST(ProgressTest, UnknownTotalHasNoPercentOrEta) {
  std::ostringstream out;
  ProgressBar::Options o = plain(0);
  o.unit = "files";
  ProgressBar bar(0, 0, o, out);
  bar.update(1);
  std::this_thread::sleep_for(60ms);
  bar.update(37);
  bar.finish();
  const std::string text = out.str();
  EXPECT_EQ(text.find('%'), std::string::npos) << text;
  EXPECT_EQ(text.find("ETA"), std::string::npos) << text;
  EXPECT_NE(text.find("train 37 files"), std::string::npos) << text;
  EXPECT_NE(text.find("files/s"), std::string::npos) << text;
}

TEST(ProgressTest, TerminalRedrawsInPlace) {
  std::ostringstream out;
  ProgressBar::Options o = plain(10);
  o.tty = true;
  ProgressBar bar(40, 0, o, out);
  bar.update(10, std::string(300, 'x'));
  const std::string first = out.str();
  EXPECT_EQ(first.rfind("\rtrain [=====>", 0), 0u) << first;
  EXPECT_NE(first.find("10/40 25%"), std::string::npos) << first;
  EXPECT_EQ(first.find('\n'), std::string::npos);
  // "\r" + at most 100 columns + "\x1b[K": a line that never wraps.
  ASSERT_GE(first.size(), 4u);
  EXPECT_EQ(first.substr(first.size() - 3), "\x1b[K");
  EXPECT_LE(first.size(), 1 + 100 + 3u);
  bar.update(20);
  bar.finish("done");
  const std::string text = out.str();
  EXPECT_EQ(text.back(), '\n');
  EXPECT_EQ(text.find('\n'), text.size() - 1);  // one line, redrawn
  const std::string last = text.substr(text.rfind('\r'));
  EXPECT_NE(last.find("20/40 50%"), std::string::npos) << last;
  EXPECT_NE(last.find("| done"), std::string::npos) << last;
}

TEST(ProgressTest, DisabledPrintsNothing) {
  std::ostringstream out;
  ProgressBar::Options o = plain(0);
  o.enabled = false;
  ProgressBar bar(10, 0, o, out);
  for (int i = 1; i <= 10; ++i) bar.update(i, "loss 1");
  bar.finish("done");
  EXPECT_TRUE(out.str().empty());
  o.tty = true;
  ProgressBar tty_bar(10, 0, o, out);
  tty_bar.update(5);
  tty_bar.finish();
  EXPECT_TRUE(out.str().empty());
}

TEST(ProgressTest, FinishWithoutUpdates) {
  std::ostringstream out;
  ProgressBar bar(10, 3, plain(10), out);
  bar.finish();
  EXPECT_EQ(out.str(), "train 3/10 (30%)\n");
}

}  // namespace
}  // namespace bottleneck
