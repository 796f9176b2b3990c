// The bad-input corpus: every command that reads images (denoise, eval, train) meets each kind
// of broken or unusual file a real folder holds, and must name the bad ones with the reason,
// process the rest and never allocate for a decompression bomb.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <regex>

#include <gtest/gtest.h>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <torch/torch.h>

#include "util/atomic_file.h"
#include "formats/checkpoint.h"
#include "image/image_io.h"
#include "nets/models.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace bottleneck;
using bottleneck::test::CommandResult;
using bottleneck::test::TempDir;

namespace {

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

std::string be32(uint32_t v) { return {char(v >> 24), char(v >> 16), char(v >> 8), char(v)}; }

std::string png_chunk(const std::string& type, const std::string& data) {
  const std::string body = type + data;
  const uint32_t crc = static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(body.data()), body.size()));
  return be32(static_cast<uint32_t>(data.size())) + body + be32(crc);
}

// A PNG written by hand, for layouts OpenCV cannot write (palette, gray + alpha) and for lying
// headers. `rows` are the raw scanlines without filter bytes.
std::string png_file(uint32_t width, uint32_t height, char bit_depth, char colour_type, const std::string& rows,
                     size_t row_bytes, const std::string& palette = "") {
  std::string raw;
  for (size_t y = 0; y * row_bytes < rows.size(); ++y) raw += '\0' + rows.substr(y * row_bytes, row_bytes);
  uLongf size = compressBound(raw.size());
  std::string idat(size, '\0');
  compress(reinterpret_cast<Bytef*>(idat.data()), &size, reinterpret_cast<const Bytef*>(raw.data()), raw.size());
  idat.resize(size);
  const std::string ihdr = be32(width) + be32(height) + std::string{bit_depth, colour_type, 0, 0, 0};
  return std::string("\x89PNG\r\n\x1a\n", 8) + png_chunk("IHDR", ihdr) +
         (palette.empty() ? "" : png_chunk("PLTE", palette)) + png_chunk("IDAT", idat) + png_chunk("IEND", "");
}

cv::Mat synthetic_mat(int channels, int h, int w, uint64_t seed, int depth = CV_8U) {
  return tensor_to_mat(test::synthetic_image(channels, h, w, seed), depth);
}

const std::string kUnrecognised =
    "not a recognised image (unknown format or corrupt data); PNG, JPEG, BMP, TIFF, WebP and PNM are read";

// Every file of the corpus by its path relative to the corpus folder, with the reason it must
// fail with, or "" for a file that must be read.
std::map<std::string, std::string> make_corpus(const std::string& dir) {
  std::map<std::string, std::string> expected;
  fs::create_directories(dir);
  auto good = [&](const std::string& name, const cv::Mat& mat) {
    fs::create_directories(fs::path(dir + "/" + name).parent_path());
    if (!cv::imwrite(dir + "/" + name, mat)) throw std::runtime_error("cannot write " + name);
    expected[name] = "";
  };
  good("good.png", synthetic_mat(1, 40, 40, 1));
  good("one_pixel.png", synthetic_mat(1, 1, 1, 2));
  good("column_1x5000.png", synthetic_mat(1, 5000, 1, 3));
  good("gray16.png", synthetic_mat(1, 24, 30, 4, CV_16U));
  cv::Mat rgba;
  cv::cvtColor(synthetic_mat(3, 20, 28, 5), rgba, cv::COLOR_BGR2BGRA);
  good("rgba.png", rgba);
  // A folder whose name looks like an image is searched, not read.
  good("x.png/inside.png", synthetic_mat(3, 18, 22, 6));

  std::string gray_alpha;
  for (int i = 0; i < 16 * 12; ++i) gray_alpha += {char(i * 7), char(255 - i)};
  write_bytes(dir + "/gray_alpha.png", png_file(16, 12, 8, 4, gray_alpha, 32));
  expected["gray_alpha.png"] = "";
  std::string indices;
  for (int i = 0; i < 16 * 12; ++i) indices += char(i % 4);
  write_bytes(dir + "/palette.png", png_file(16, 12, 8, 3, indices, 16, std::string("\xff\0\0\0\xff\0\0\0\xff\x80\x80\x80", 12)));
  expected["palette.png"] = "";
  // OpenCV cannot write CMYK; Debian's Python Imaging Library (which python3-skimage brings) can.
  if (test::system_python_has("PIL") &&
      test::run_command(std::string(test::kSystemPython) + " -c \"from PIL import Image; Image.new('CMYK', (20, 14), "
                        "(10, 200, 30, 5)).save('" + dir + "/cmyk.jpg')\"").exit_code == 0)
    expected["cmyk.jpg"] = "";

  write_bytes(dir + "/empty.png", "");
  expected["empty.png"] = "empty file";
  cv::imwrite(dir + "/full.png", synthetic_mat(3, 64, 64, 7));
  cv::imwrite(dir + "/full.jpg", synthetic_mat(3, 64, 64, 7));
  const std::string png = read_file(dir + "/full.png"), jpg = read_file(dir + "/full.jpg");
  fs::remove(dir + "/full.png");
  fs::remove(dir + "/full.jpg");
  write_bytes(dir + "/truncated.png", png.substr(0, png.size() / 2));
  expected["truncated.png"] = "truncated or corrupt image data";
  write_bytes(dir + "/truncated.jpg", jpg.substr(0, jpg.size() * 2 / 3));
  expected["truncated.jpg"] = "truncated or corrupt image data";
  std::string noise(4096, '\0');
  std::mt19937 rng(1);
  for (char& c : noise) c = static_cast<char>(rng());
  write_bytes(dir + "/random.png", noise);
  expected["random.png"] = kUnrecognised;
  write_bytes(dir + "/text.jpg", "this is a text file, not a picture\n");
  expected["text.jpg"] = kUnrecognised;
  fs::create_symlink(dir + "/nowhere.png", dir + "/dangling.png");
  expected["dangling.png"] = "no such file (dangling symbolic link)";
  fs::create_symlink("loop.png", dir + "/loop.png");
  expected["loop.png"] = "too many levels of symbolic links";
  // 100000 x 100000 gray = 10 GB decoded, from a 100-byte file.
  write_bytes(dir + "/bomb.png", png_file(100000, 100000, 8, 0, std::string(64, '\0'), 64));
  expected["bomb.png"] = "image is 100000x100000 = 10000000000 pixels, over the limit of 268435456 (--max-pixels)";
  // A Radiance HDR file (32768 x 32768 floats, 12 GB) named .png: OpenCV would decode it by its
  // signature, without our header check.
  write_bytes(dir + "/hdr_bomb.png", "#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 32768 +X 32768\n" + std::string(64, '\x02'));
  expected["hdr_bomb.png"] = kUnrecognised;
  cv::imwrite(dir + "/locked.png", synthetic_mat(1, 20, 20, 8));
  fs::create_directories(dir + "/locked_folder");
  fs::permissions(dir + "/locked.png", fs::perms::none);
  expected["locked.png"] = "permission denied";
  // A folder that cannot be listed is one message; the files beside it are still read.
  cv::imwrite(dir + "/locked_folder/hidden.png", synthetic_mat(1, 20, 20, 9));
  fs::permissions(dir + "/locked_folder", fs::perms::none);
  expected["locked_folder"] = "cannot list: permission denied";
  return expected;
}

// Root reads files without permission; running the CLI without the capabilities that allow it
// makes the permission case mean the same for root (CI) and for users.
std::string cli(const std::string& args) {
  std::string prefix = geteuid() == 0 ? "setpriv --bounding-set=-dac_override,-dac_read_search " : "";
  return prefix + "'" + BOTTLENECK_CLI_PATH + "' " + args;
}

// Runs the command line and measures the peak resident memory of the process, in MiB.
CommandResult run_measured(const std::string& command_line, double* peak_mib) {
  const std::string log = (fs::temp_directory_path() / ("bottleneck-measured-" + std::to_string(getpid()) + ".log")).string();
  const std::string sh = "exec " + command_line + " > '" + log + "' 2>&1";
  CommandResult result;
  const pid_t pid = fork();
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", sh.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  int status = 0;
  struct rusage usage {};
  wait4(pid, &status, 0, &usage);
  *peak_mib = static_cast<double>(usage.ru_maxrss) / 1024.0;  // Linux reports KiB
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  result.output = read_file(log);
  fs::remove(log);
  return result;
}

std::string gray_model(const TempDir& dir) {
  ArchSpec spec;
  spec.widths = {8, 16};
  torch::manual_seed(1);
  Autoencoder model = make_model(spec);
  CheckpointInfo info;
  info.arch = spec;
  save_checkpoint(dir / "model.ckpt", *model, nullptr, info);
  return dir / "model.ckpt";
}

std::vector<std::string> lines_with(const std::string& text, const std::string& needle) {
  std::vector<std::string> found;
  std::stringstream ss(text);
  for (std::string line; std::getline(ss, line);)
    if (line.find(needle) != std::string::npos) found.push_back(line);
  return found;
}

std::vector<std::string> lines_starting(const std::string& text, const std::string& prefix) {
  std::vector<std::string> found;
  for (const std::string& line : lines_with(text, prefix))
    if (line.compare(0, prefix.size(), prefix) == 0) found.push_back(line);
  return found;
}

// The input files by content, symlinks by target (the locked file by its permissions only; the
// locked folder's contents where this process may read them).
std::map<std::string, std::string> snapshot(const std::string& dir) {
  std::map<std::string, std::string> files;
  for (auto it = fs::recursive_directory_iterator(dir, fs::directory_options::skip_permission_denied);
       it != fs::recursive_directory_iterator(); ++it) {
    const std::string rel = it->path().lexically_relative(dir).generic_string();
    std::error_code ec;
    if (it->is_symlink(ec))
      files[rel] = "-> " + fs::read_symlink(it->path()).string();
    else if (rel == "locked.png")
      files[rel] = "perms " + std::to_string(static_cast<int>(fs::status(it->path()).permissions()));
    else if (it->is_regular_file(ec))
      files[rel] = read_file(it->path().string());
  }
  return files;
}

size_t count_good(const std::map<std::string, std::string>& expected) {
  return std::count_if(expected.begin(), expected.end(), [](const auto& e) { return e.second.empty(); });
}

const std::string kFlags = " --threads 1 ";

}  // namespace

TEST(BadInput, DenoiseNamesEachBadFileAndDenoisesTheRest) {
  TempDir dir;
  const std::string model = gray_model(dir);
  const std::string in = dir / "corpus";
  const auto expected = make_corpus(in);
  const auto before = snapshot(in);

  const CommandResult r = test::run_command(cli("denoise --model " + model + " " + in + " " + dir / "out" + kFlags));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  const size_t good = count_good(expected), bad = expected.size() - good;
  EXPECT_NE(r.output.find("denoised " + std::to_string(good) + ", skipped 0, failed " + std::to_string(bad) + " ("),
            std::string::npos) << r.output;
  for (const auto& [name, reason] : expected) {
    SCOPED_TRACE(name);
    const std::string out = dir / "out/" + name;
    if (reason.empty()) {
      // No warning; an informational note (gray_alpha.png is denoised as gray) is no failure.
      EXPECT_TRUE(lines_with(r.output, "warning: " + in + "/" + name + ":").empty()) << r.output;
      const cv::Mat src = cv::imread(in + "/" + name, cv::IMREAD_UNCHANGED);
      const cv::Mat result = cv::imread(out, cv::IMREAD_UNCHANGED);
      ASSERT_FALSE(result.empty()) << "no readable output";
      EXPECT_EQ(result.size(), src.size());
      EXPECT_EQ(result.depth(), src.depth());
    } else {
      // One line, naming the file and the reason; no output.
      const auto lines = lines_with(r.output, in + "/" + name + ": ");
      ASSERT_EQ(lines.size(), 1u) << r.output;
      EXPECT_NE(lines[0].find(in + "/" + name + ": " + reason), std::string::npos) << lines[0];
      EXPECT_FALSE(fs::exists(fs::symlink_status(out))) << "an output for a bad file";
    }
  }
  EXPECT_EQ(snapshot(in), before) << "inputs must never change";
}

// The numbers of a table row (noise, PSNR and SSIM of noisy, NLM and model), without the timings.
std::string quality_row(const std::string& table) {
  const auto rows = lines_with(table, "| gaussian:25 |");
  if (rows.size() != 1) return "no single row in: " + table;
  std::string row = rows[0];
  for (int bar = 0; bar < 8; ++bar) row = row.substr(row.find('|') + 1);
  return rows[0].substr(0, rows[0].size() - row.size());
}

TEST(BadInput, EvalNamesEachBadFileEvaluatesTheRestAndExitsNonZero) {
  TempDir dir;
  const std::string model = gray_model(dir);
  const std::string in = dir / "corpus";
  const auto expected = make_corpus(in);
  const size_t good = count_good(expected), bad = expected.size() - good;
  // The readable part of the corpus, all together: the reference numbers.
  for (const auto& [name, reason] : expected)
    if (reason.empty()) {
      fs::create_directories(fs::path(dir / "good/" + name).parent_path());
      fs::copy_file(in + "/" + name, dir / "good/" + name);
    }
  const CommandResult clean = test::run_command(cli("eval --no-nlm --model " + model + " --clean " + dir / "good" + kFlags));
  ASSERT_EQ(clean.exit_code, 0) << clean.output;
  EXPECT_NE(clean.output.find(std::to_string(good) + " image(s)"), std::string::npos) << clean.output;

  const CommandResult r = test::run_command(cli("eval --no-nlm --model " + model + " --clean " + in + kFlags));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  for (const auto& [name, reason] : expected) {
    SCOPED_TRACE(name);
    if (reason.empty()) {
      // No warning; an informational note (gray_alpha.png is denoised as gray) is no failure.
      EXPECT_TRUE(lines_with(r.output, "warning: " + in + "/" + name + ":").empty()) << r.output;
    } else {
      // One warning as it happens, one line in the table's list of what it leaves out.
      EXPECT_EQ(lines_with(r.output, in + "/" + name + ": "),
                (std::vector<std::string>{"warning: " + in + "/" + name + ": " + reason, "  " + in + "/" + name + ": " + reason}))
          << r.output;
    }
  }
  EXPECT_NE(r.output.find(std::to_string(good) + " image(s) from " + in), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("Not in these numbers (" + std::to_string(bad) + " could not be read):"), std::string::npos)
      << r.output;
  // The good files are evaluated exactly as on their own.
  EXPECT_EQ(quality_row(r.output), quality_row(clean.output));
  const auto last = lines_starting(r.output, "eval: ");
  ASSERT_EQ(last.size(), 1u) << r.output;
  EXPECT_EQ(last[0], "eval: " + std::to_string(bad) + " inputs could not be read and are not in the numbers (see the warnings above)");
}

TEST(BadInput, TrainSkipsEachBadFileWithAWarningTrainsAndExitsNonZero) {
  TempDir dir;
  const std::string in = dir / "corpus";
  const auto expected = make_corpus(in);
  const std::string net = " --arch unet --widths 8,16 --patch 16 --batch 4 --iters 3 --val-every 3 --samples 1";
  CommandResult r = test::run_command(cli("train --data " + in + " --val " + in + " --out " + dir / "run" + net + kFlags));
  // Training finished on the rest, and the exit status says what it left out.
  ASSERT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("loaded " + std::to_string(count_good(expected)) + " images"), std::string::npos) << r.output;
  const std::string bad = std::to_string(expected.size() - count_good(expected));
  const std::string summary = "train: " + std::to_string(2 * (expected.size() - count_good(expected))) +
                              " unreadable inputs skipped (" + bad + " training, " + bad +
                              " validation; see the warnings above)";
  EXPECT_EQ(lines_starting(r.output, "train: "), std::vector<std::string>{summary}) << r.output;
  EXPECT_EQ(read_checkpoint_info(dir / "run/last.ckpt").iteration, 3);
  for (const auto& [name, reason] : expected) {
    SCOPED_TRACE(name);
    const auto lines = lines_with(r.output, in + "/" + name + ":");
    if (reason.empty()) {
      EXPECT_TRUE(lines.empty()) << r.output;
    } else {
      // Once for the training set, once for the validation set.
      ASSERT_EQ(lines.size(), 2u) << r.output;
      for (const auto& line : lines)
        EXPECT_EQ(line, "warning: " + in + "/" + name + ": " + reason + " (skipped)");
    }
  }
  EXPECT_NO_THROW(load_checkpoint(dir / "run/last.ckpt"));

  // --max-pixels lowers the limit for training and validation alike; --allow-skipped accepts
  // the skipping, which is still reported.
  r = test::run_command(cli("train --data " + in + " --val " + in + " --out " + dir / "run2" + net +
                            " --max-pixels 2000 --allow-skipped" + kFlags));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string more = std::to_string(expected.size() - count_good(expected) + 1);
  EXPECT_EQ(lines_starting(r.output, "train: "),
            std::vector<std::string>{"train: " + std::to_string(2 * (expected.size() - count_good(expected) + 1)) +
                                     " unreadable inputs skipped (" + more + " training, " + more +
                                     " validation; see the warnings above)"})
      << r.output;
  EXPECT_EQ(lines_with(r.output, "column_1x5000.png: image is 1x5000 = 5000 pixels, over the limit of 2000").size(), 2u)
      << r.output;
  EXPECT_NE(r.output.find("loaded " + std::to_string(count_good(expected) - 1) + " images"), std::string::npos);
  EXPECT_NE(read_file(dir / "run2/config.json").find("\"max_pixels\": 2000"), std::string::npos);
}

TEST(BadInput, DecompressionBombIsRefusedBeforeAllocating) {
  TempDir dir;
  const std::string model = gray_model(dir);
  fs::create_directories(dir / "bomb");
  write_bytes(dir / "bomb/bomb.png", png_file(100000, 100000, 8, 0, std::string(64, '\0'), 64));
  // Decoding would take 10 GB; the process itself (LibTorch, OpenCV, a tiny model) takes about
  // 0.3 GB, more under the address sanitizer.
  const double limit_mib = 1500;
  const std::string reason = "bomb.png: image is 100000x100000 = 10000000000 pixels, over the limit";
  double peak = 0;
  CommandResult r = run_measured(cli("denoise --model " + model + " " + dir / "bomb" + " " + dir / "out" + kFlags), &peak);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find(reason), std::string::npos) << r.output;
  EXPECT_LT(peak, limit_mib) << "denoise";
  std::cout << "denoise peak RSS " << peak << " MiB\n";
  r = run_measured(cli("eval --no-nlm --model " + model + " --clean " + dir / "bomb" + kFlags), &peak);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find(reason), std::string::npos) << r.output;
  EXPECT_LT(peak, limit_mib) << "eval";
  r = run_measured(cli("train --data " + dir / "bomb" + " --out " + dir / "run --arch unet --widths 8,16 --patch 16 --iters 1" + kFlags), &peak);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find(reason), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("no readable images"), std::string::npos) << r.output;
  EXPECT_LT(peak, limit_mib) << "train";
}
