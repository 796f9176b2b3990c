#include <iostream>

#include "anomaly/anomaly_jobs.h"
#include "cli/command.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/progress.h"
#include "util/text_format.h"

// score, calibrate, encode and decode: flags -> options -> one call of anomaly/anomaly_jobs.

namespace bottleneck::cli {
namespace {

// --score's help, for score and calibrate: the names and the default from anomaly_model.h.
std::string score_help() {
  return "one of " + score_kind_names() + " (default: the calibrated one, else " + name_of(kDefaultScore) + ")";
}

void add_model(cxxopts::Options& o) {
  o.add_options("Model")("model", "reconstruction model: a checkpoint of train --task reconstruct or its export",
                         cxxopts::value<std::string>());
}

std::string required(const cxxopts::ParseResult& r, const std::string& name, const std::string& usage) {
  if (!r.count(name)) throw UsageError(usage);
  return r[name].as<std::string>();
}

// Failures are printed even with --quiet: the exit code needs a reason.
int finish(const std::vector<std::string>& failures, const std::string& verb, int64_t done, const Context& ctx) {
  if (!failures.empty() || ctx.log.enabled(LogLevel::kInfo))
    std::cerr << verb << " " << done << ", failed " << failures.size() << "\n";
  return failures.empty() ? kExitSuccess : kExitFailure;
}

int run_score(const cxxopts::ParseResult& r, const Context& ctx) {
  ScoreOptions o;
  if (!r.count("input")) throw UsageError("give the images: score --model M IMAGE_OR_FOLDER...");
  o.inputs = r["input"].as<std::vector<std::string>>();
  o.model = required(r, "model", "--model is required");
  o.output = get_or<std::string>(r, "output", "");
  o.score = get_or<std::string>(r, "score", "");
  o.max_pixels = get_or<int64_t>(r, "max-pixels", o.max_pixels);
  o.progress_tty = is_terminal(2);
  const std::string csv_path = get_or<std::string>(r, "csv", "");
  if (!csv_path.empty()) refuse_output_over_input(csv_path, o.inputs, "--csv file");
  const ScoreReport report = score_files(o, ctx.log);
  const std::string csv = scores_csv(report);
  if (csv_path.empty()) std::cout << csv << std::flush;
  else write_file_atomically(csv_path, csv);
  ctx.log.info("score ", name_of(report.kind), report.calibrated ? ", threshold " + significant(report.threshold, 6) + ": " +
                                                                       std::to_string(report.anomalies) + " anomalies"
                                                                 : std::string(", not calibrated: no image flagged"),
               " (", fixed(report.seconds, 1), " s)");
  // Anomalies are findings, not failures: the exit code is 0 either way.
  return finish(report.failures, "scored", static_cast<int64_t>(report.rows.size()), ctx);
}

int run_calibrate(const cxxopts::ParseResult& r, const Context& ctx) {
  CalibrateOptions o;
  o.model = required(r, "model", "--model is required");
  o.normal = required(r, "normal", "--normal DIR is required (images without anomalies)");
  o.fpr = get_or<double>(r, "fpr", o.fpr);
  o.score = get_or<std::string>(r, "score", "");
  o.output = get_or<std::string>(r, "output", "");
  o.max_pixels = get_or<int64_t>(r, "max-pixels", o.max_pixels);
  o.progress_tty = is_terminal(2);
  const CalibrateResult result = calibrate(o, ctx.log);
  const Calibration& c = result.calibration;
  ctx.log.info("wrote ", result.written, ": ", name_of(c.score), " threshold ", significant(c.threshold, 6), " (", result.flagged,
               " of ", c.normal.count, " normal images above it; asked FPR ", c.fpr, "), normal scores mean ",
               significant(c.normal.mean, 4), " std ", significant(c.normal.std, 4), " max ", significant(c.normal.max, 4));
  if (c.latent.present)
    ctx.log.info("latent scores: a Gaussian of the ", c.latent.dims, "-number codes of ", c.latent.count, " normal images");
  return finish(result.failures, "calibrated on", c.normal.count, ctx);
}

int run_encode(const cxxopts::ParseResult& r, const Context& ctx) {
  EncodeOptions o;
  if (!r.count("input")) throw UsageError("give the images: encode --model M IMAGE_OR_FOLDER... -o latents.npy");
  o.inputs = r["input"].as<std::vector<std::string>>();
  o.model = required(r, "model", "--model is required");
  o.output = required(r, "output", "-o latents.csv or latents.npy is required");
  o.max_pixels = get_or<int64_t>(r, "max-pixels", o.max_pixels);
  o.progress_tty = is_terminal(2);
  const EncodeReport report = encode_files(o, ctx.log);
  ctx.log.info("wrote ", o.output, ": ", report.done, " vectors of ", report.dims, " values (code ",
               shape_text(report.code_shape), ")");
  return finish(report.failures, "encoded", report.done, ctx);
}

int run_decode(const cxxopts::ParseResult& r, const Context& ctx) {
  DecodeOptions o;
  if (!r.count("input")) throw UsageError("give the latents: decode --model M latents.npy -o FOLDER");
  const auto inputs = r["input"].as<std::vector<std::string>>();
  if (inputs.size() != 1) throw UsageError("decode reads one latents file");
  o.latents = inputs[0];
  o.model = required(r, "model", "--model is required");
  o.output = required(r, "output", "-o FOLDER is required");
  if (r.count("size")) {
    const std::string size = r["size"].as<std::string>();
    const size_t x = size.find('x');
    try {
      size_t used = 0;
      o.width = std::stoi(size.substr(0, x), &used);
      if (x == std::string::npos || used != x) throw std::invalid_argument(size);
      o.height = std::stoi(size.substr(x + 1), &used);
      if (used != size.size() - x - 1) throw std::invalid_argument(size);
    } catch (const std::exception&) {
      throw UsageError("--size takes WIDTHxHEIGHT, e.g. 256x256, got '" + size + "'");
    }
    if (o.width < 1 || o.height < 1 || o.width > 65536 || o.height > 65536)
      throw UsageError("--size must be from 1x1 to 65536x65536, got '" + size + "'");
  }
  const DecodeReport report = decode_files(o, ctx.log);
  ctx.log.info("wrote ", report.done, " images to ", o.output);
  return finish(report.failures, "decoded", report.done, ctx);
}

void add_files(cxxopts::Options& o) {
  o.add_options("Files")("input", "image files or folders (searched recursively)",
                         cxxopts::value<std::vector<std::string>>())
      ("max-pixels", "refuse larger images (default 268435456)", cxxopts::value<int64_t>());
}

}  // namespace

Command score_command() {
  Command c;
  c.name = "score";
  c.summary = "anomaly scores of images (CSV: file, score, is_anomaly) and, with --output, heat maps of where";
  c.positional_help = "--model M IN... [--output DIR]";
  c.positionals = {"input"};
  c.add_options = [](cxxopts::Options& o) {
    add_model(o);
    add_files(o);
    o.add_options("Score")
        ("output", "folder for NAME.heat.png (the per-pixel score in colour over the image) and NAME.map.png "
                   "(the raw map, 16-bit: value x 65535), input trees mirrored", cxxopts::value<std::string>())
        ("csv", "write the CSV to this file (default: standard output)", cxxopts::value<std::string>())
        ("score", score_help(), cxxopts::value<std::string>());
  };
  c.run = run_score;
  return c;
}

Command calibrate_command() {
  Command c;
  c.name = "calibrate";
  c.summary = "set a model's anomaly threshold from normal images at a false-positive rate, stored in the model file";
  c.add_options = [](cxxopts::Options& o) {
    add_model(o);
    o.add_options("Calibration")
        ("normal", "folder (or file) of normal images", cxxopts::value<std::string>())
        ("fpr", "fraction of normal images allowed above the threshold, 0 to below 1 (default 0.01)", cxxopts::value<double>())
        ("score", score_help(), cxxopts::value<std::string>())
        ("output", "write the calibrated model here instead of in place (required for a checkpoint)",
         cxxopts::value<std::string>())
        ("max-pixels", "refuse larger images (default 268435456)", cxxopts::value<int64_t>());
  };
  c.run = run_calibrate;
  return c;
}

Command encode_command() {
  Command c;
  c.name = "encode";
  c.summary = "write the latent vectors (the bottleneck code) of images to a CSV or NPY file";
  c.positional_help = "--model M IN... -o latents.{csv,npy}";
  c.positionals = {"input"};
  c.add_options = [](cxxopts::Options& o) {
    add_model(o);
    add_files(o);
    o.add_options("Files")("o,output", "latents.csv (file, z0, z1, ...) or latents.npy (float32 N x D, names in "
                                       "latents.npy.files.txt)", cxxopts::value<std::string>());
  };
  c.run = run_encode;
  return c;
}

Command decode_command() {
  Command c;
  c.name = "decode";
  c.summary = "turn latent vectors (from encode) back into images";
  c.positional_help = "--model M LATENTS -o DIR";
  c.positionals = {"input"};
  c.add_options = [](cxxopts::Options& o) {
    add_model(o);
    o.add_options("Files")("input", "latents.csv or latents.npy", cxxopts::value<std::vector<std::string>>())
        ("o,output", "folder for the images (NAME.png per row)", cxxopts::value<std::string>())
        ("size", "WIDTHxHEIGHT of the images, for a model trained without --resize", cxxopts::value<std::string>());
  };
  c.run = run_decode;
  return c;
}

}  // namespace bottleneck::cli
