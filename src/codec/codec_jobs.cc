#include "codec/codec_jobs.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <limits>
#include <optional>

#include "codec/codec_compare.h"
#include "inference/shipped_models.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/file_jobs.h"
#include "util/progress.h"
#include "util/text_format.h"

namespace fs = std::filesystem;

namespace bottleneck {
namespace {

// "FILE: reason" for a failure of the job on `input`, without naming the file twice.
std::string failure_text(const std::string& input, const std::exception& e) {
  const auto* err = dynamic_cast<const Error*>(&e);
  if (err && !err->path().empty()) return first_line(err->what());
  return input + ": " + first_line(err ? err->reason() : std::string(e.what()));
}

LoadedCodec load_model_option(const std::string& model) {
  return load_codec_model(model.empty() ? shipped_codec_model() : model);
}

// The loop both jobs share: skip, run, count, report and show progress.
template <typename Work>
// protect_input_tree: an existing output inside an input folder is a user's file there (a
// decompressed NAME.png beside NAME.bnc may be the original), not one to replace.
CodecJobReport run_jobs(const FileJobPlan& plan, const std::string& output_root, bool skip_existing, bool tty,
                        bool protect_input_tree, const std::string& label, const Logger& log, Work work) {
  CodecJobReport report;
  for (const Error& e : plan.unlisted) {
    ++report.failed;
    report.failures.push_back(e.what());
    log.warn(e.what());
  }
  ProgressBar::Options bar_options;
  bar_options.label = label;
  bar_options.unit = "files";
  bar_options.tty = tty;
  bar_options.enabled = log.enabled(LogLevel::kInfo);
  ProgressBar bar(static_cast<int64_t>(plan.jobs.size()), 0, bar_options, std::cerr);
  const auto start = std::chrono::steady_clock::now();
  int64_t n = 0;
  for (const FileJob& job : plan.jobs) {
    std::error_code ec;
    if (skip_existing && fs::exists(job.output, ec)) {
      ++report.skipped;
    } else {
      try {
        if (protect_input_tree && job.in_input_tree && fs::exists(job.output, ec))
          throw Error(ErrorKind::kUsage, job.output,
                      "exists in the input folder and is not this job's to replace; write into another folder "
                      "(or pass --skip-existing)");
        make_output_folder(job.output, output_root);
        work(job, report);
        ++report.done;
      } catch (const std::exception& e) {
        ++report.failed;
        report.failures.push_back(failure_text(job.input, e));
        log.warn(report.failures.back());
      }
    }
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (++n < static_cast<int64_t>(plan.jobs.size()))
      bar.update(n, fixed(report.megapixels / std::max(elapsed, 1e-9), 2) + " MP/s");
  }
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  bar.finish(fixed(report.megapixels / std::max(report.seconds, 1e-9), 2) + " MP/s");
  return report;
}

// Without --model, decompress finds each file's model by the id the file names among the model
// files of some folders, loading each candidate once, when first needed (codec.bnm first).
class ModelsById {
 public:
  explicit ModelsById(const std::vector<std::string>& dirs) : dirs_(dirs), unread_(codec_model_files(dirs)) {}

  LoadedCodec& find(const ModelId& id, const std::string& file) {
    for (;;) {
      for (LoadedCodec& c : loaded_)
        if (c.info.id == id) return c;
      if (unread_.empty()) break;
      const std::string path = unread_.front();
      unread_.erase(unread_.begin());
      try {
        loaded_.push_back(load_codec_model(path));
        seen_ += (seen_.empty() ? "" : ", ") + fs::path(path).filename().string() + " is " +
                 model_id_hex(loaded_.back().info.id);
      } catch (const Error&) {
        seen_ += (seen_.empty() ? "" : ", ") + fs::path(path).filename().string() + " unreadable";
      }
    }
    std::string dirs;
    for (const std::string& d : dirs_) dirs += (dirs.empty() ? "" : ", ") + d;
    throw Error(ErrorKind::kInvalidData, file,
                "compressed with model " + model_id_hex(id) + ", and no model file here has that id (searched " +
                    (dirs.empty() ? "nowhere" : dirs) + (seen_.empty() ? ": no .bnm files" : ": " + seen_) +
                    "); pass --model FILE" + kCodecModelExtension);
  }

 private:
  std::vector<std::string> dirs_;
  std::vector<std::string> unread_;
  std::vector<LoadedCodec> loaded_;  // find's reference lasts until its next call
  std::string seen_;                 // "codec.bnm is <id>, ..." for the error
};

constexpr char kCompareSuffix[] = ".compare.png";

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

bool is_directory(const std::string& p) {
  std::error_code ec;
  return fs::is_directory(p, ec);
}

}  // namespace

CodecJobReport compress_files(const CompressOptions& o, const Logger& log) {
  validate(o.target);
  if (o.max_pixels < 1) throw UsageError("--max-pixels must be >= 1");
  FileJobOptions fo;
  fo.inputs = o.inputs;
  fo.output = o.output;
  fo.list = [](const std::string& root, std::vector<Error>* unlisted) { return list_images(root, unlisted); };
  fo.output_name = [](const std::string& rel) { return container_path_for(rel); };
  fo.names_a_file = [](const std::string& out) { return has_container_extension(out); };
  fo.what = "images (png jpg jpeg bmp tif tiff webp pgm ppm pnm)";
  FileJobPlan plan = plan_file_jobs(fo);
  // Comparison strips an earlier --compare wrote beside its outputs are not inputs.
  plan.jobs.erase(std::remove_if(plan.jobs.begin(), plan.jobs.end(),
                                 [](const FileJob& j) { return j.in_input_tree && ends_with(j.input, kCompareSuffix); }),
                  plan.jobs.end());
  if (plan.jobs.empty() && plan.unlisted.empty()) throw Error(ErrorKind::kInvalidData, o.inputs[0], "no images found");
  LoadedCodec codec = load_model_option(o.model);
  log.debug("codec model ", codec.info.path, " (id ", model_id_hex(codec.info.id), ")");
  const std::string root = plan.jobs.size() == 1 && !is_directory(o.output) && has_container_extension(o.output) ? "" : o.output;
  double bpp_sum = 0, psnr_sum = 0;
  CodecJobReport report = run_jobs(plan, root, o.skip_existing, o.progress_tty, false, "compress", log,
                                   [&](const FileJob& job, CodecJobReport& r) {
    const ImageSamples samples = load_samples(job.input, o.max_pixels);
    if (!samples.alpha.empty())
      throw Error(ErrorKind::kUnsupported, job.input,
                  "has an alpha channel, which .bnc files do not store; flatten or drop it first "
                  "(e.g. convert IN -alpha off OUT.png)");
    const CompressedImage c = compress_image(codec, samples.color, o.target);
    write_file_atomically(job.output, c.bytes.data(), c.bytes.size());
    if (o.compare) {
      const std::string strip = fs::path(job.output).replace_extension(kCompareSuffix).string();
      refuse_output_over_input(strip, {job.input}, "comparison");
      cv::Mat eight = samples.color;
      if (eight.depth() == CV_16U) samples.color.convertTo(eight, CV_8U, 1.0 / 257.0);
      save_mat(strip, compare_at_equal_size(eight, c));
    }
    if (samples.color.depth() == CV_16U) log.info(job.input, ": 16-bit samples coded at 8-bit precision");
    if (!c.target_reached)
      log.warn(job.input, ": the target is out of reach; used quality ", fixed(c.quality, 0));
    log.debug(job.output, ": quality ", fixed(c.quality, 2), ", ", c.bytes.size(), " bytes, ", fixed(c.bpp, 3),
              " bpp, ", fixed(c.psnr, 2), " dB");
    r.megapixels += static_cast<double>(samples.color.total()) / 1e6;
    r.compressed_bytes += c.bytes.size();
    bpp_sum += c.bpp;
    psnr_sum += c.psnr;
  });
  const double n = static_cast<double>(report.done);
  report.mean_bpp = n > 0 ? bpp_sum / n : std::numeric_limits<double>::quiet_NaN();
  report.mean_psnr = n > 0 ? psnr_sum / n : std::numeric_limits<double>::quiet_NaN();
  return report;
}

CodecJobReport decompress_files(const DecompressOptions& o, const Logger& log) {
  FileJobOptions fo;
  fo.inputs = o.inputs;
  fo.output = o.output;
  fo.list = [](const std::string& root, std::vector<Error>* unlisted) {
    return list_files(root, [](const std::string& p) { return has_container_extension(p); }, unlisted);
  };
  fo.output_name = [](const std::string& rel) { return fs::path(rel).replace_extension(".png").string(); };
  fo.names_a_file = [](const std::string& out) { return has_image_extension(out); };
  fo.what = kContainerExtension + std::string(" files");
  const FileJobPlan plan = plan_file_jobs(fo);
  std::optional<LoadedCodec> given;
  if (!o.model.empty()) given = load_codec_model(o.model);
  ModelsById by_id(o.model_dirs.empty() ? shipped_model_dirs() : o.model_dirs);
  const std::string root = plan.jobs.size() == 1 && !is_directory(o.output) && has_image_extension(o.output) ? "" : o.output;
  CodecJobReport report = run_jobs(plan, root, o.skip_existing, o.progress_tty, true, "decompress", log,
                                   [&](const FileJob& job, CodecJobReport& r) {
    const std::string bytes = read_file(job.input);
    const auto* data = reinterpret_cast<const uint8_t*>(bytes.data());
    LoadedCodec& codec = given ? *given : by_id.find(read_container(data, bytes.size(), job.input).header.model_id, job.input);
    const DecompressedImage d = decompress_image(codec, data, bytes.size(), job.input);
    ImageSamples decoded;
    decoded.color = d.image;
    save_samples(job.output, decoded);
    r.megapixels += static_cast<double>(d.image.total()) / 1e6;
    r.compressed_bytes += bytes.size();
  });
  report.mean_bpp = report.mean_psnr = std::numeric_limits<double>::quiet_NaN();
  return report;
}

std::string summary_line(const CodecJobReport& r, const std::string& verb) {
  std::string s = verb + " " + std::to_string(r.done) + ", skipped " + std::to_string(r.skipped) + ", failed " +
                  std::to_string(r.failed) + " (" + fixed(r.megapixels, 1) + " MP in " + fixed(r.seconds, 1) + " s";
  if (std::isfinite(r.mean_bpp)) s += ", " + fixed(r.mean_bpp, 3) + " bpp";
  if (std::isfinite(r.mean_psnr)) s += ", " + fixed(r.mean_psnr, 2) + " dB";
  return s + ")";
}

}  // namespace bottleneck
