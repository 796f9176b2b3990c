#include <iostream>

#include "cli/command.h"
#include "codec/codec_jobs.h"
#include "util/error.h"
#include "util/progress.h"

namespace bottleneck::cli {

namespace {

void add_common(cxxopts::Options& o, const std::string& what) {
  o.add_options("Files")
      ("input", what + " files or folders (searched recursively)", cxxopts::value<std::vector<std::string>>())
      ("o,output", "output folder (input trees are mirrored in it), or one output file for one input",
       cxxopts::value<std::string>())
      ("model", "codec model file (.bnm; default: the shipped models/codec.bnm)", cxxopts::value<std::string>())
      ("skip-existing", "leave files whose outputs exist (resume an interrupted job)");
}

std::optional<double> optional_double(const cxxopts::ParseResult& r, const std::string& name) {
  return r.count(name) ? std::optional<double>(r[name].as<double>()) : std::nullopt;
}

// Exit status of a job: failures are printed even with --quiet, the exit code needs a reason.
int finish(const CodecJobReport& report, const std::string& verb, const Context& ctx) {
  if (report.failed > 0 || ctx.log.enabled(LogLevel::kInfo)) std::cerr << summary_line(report, verb) << "\n";
  return report.failed == 0 ? 0 : 1;
}

int run_compress(const cxxopts::ParseResult& r, const Context& ctx) {
  CompressOptions o;
  if (!r.count("input") || !r.count("output")) throw UsageError("give the inputs and the output: compress IN... -o OUT");
  o.inputs = r["input"].as<std::vector<std::string>>();
  o.output = r["output"].as<std::string>();
  o.model = get_or<std::string>(r, "model", o.model);
  o.target.quality = optional_double(r, "quality");
  o.target.bpp = optional_double(r, "bpp");
  o.target.psnr = optional_double(r, "psnr");
  o.skip_existing = r.count("skip-existing") > 0;
  o.compare = r.count("compare") > 0;
  o.max_pixels = get_or<int64_t>(r, "max-pixels", o.max_pixels);
  o.progress_tty = is_terminal(2);
  return finish(compress_files(o, ctx.log), "compressed", ctx);
}

int run_decompress(const cxxopts::ParseResult& r, const Context& ctx) {
  DecompressOptions o;
  if (!r.count("input") || !r.count("output")) throw UsageError("give the inputs and the output: decompress IN... -o OUT");
  o.inputs = r["input"].as<std::vector<std::string>>();
  o.output = r["output"].as<std::string>();
  o.model = get_or<std::string>(r, "model", o.model);
  o.skip_existing = r.count("skip-existing") > 0;
  o.progress_tty = is_terminal(2);
  return finish(decompress_files(o, ctx.log), "decompressed", ctx);
}

}  // namespace

Command compress_command() {
  Command c;
  c.name = "compress";
  c.summary = "compress images into .bnc files with the learned codec";
  c.positional_help = "IN... -o OUT";
  c.positionals = {"input"};
  c.add_options = [](cxxopts::Options& o) {
    add_common(o, "image");
    o.add_options("Rate (one of)")
        ("quality", "1..100, continuous; higher = more bytes, better picture (default 75)", cxxopts::value<double>())
        ("bpp", "aim for this many bits per pixel, file headers included: the highest quality that fits",
         cxxopts::value<double>())
        ("psnr", "aim for this PSNR in dB: the lowest quality that reaches it", cxxopts::value<double>());
    o.add_options("Files")("max-pixels", "refuse larger images (default 268435456)", cxxopts::value<int64_t>())
        ("compare", "also write NAME.compare.png: original | ours | JPEG | WebP at the same file size, with "
                    "bytes, bpp and PSNR");
  };
  c.run = run_compress;
  return c;
}

Command decompress_command() {
  Command c;
  c.name = "decompress";
  c.summary = "decode .bnc files to PNG (gray stays gray, 16-bit originals come back as 16-bit PNG)";
  c.positional_help = "IN... -o OUT";
  c.positionals = {"input"};
  c.add_options = [](cxxopts::Options& o) { add_common(o, ".bnc"); };
  c.run = run_decompress;
  return c;
}

}  // namespace bottleneck::cli
