#include "inference/tiler.h"

#include <algorithm>
#include <map>
#include <utility>

#include <opencv2/core.hpp>
#include <torch/torch.h>

#include "util/error.h"
#include "image/image_io.h"
#include "formats/model_file.h"

namespace bottleneck {
namespace {

int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

struct Span {
  int64_t begin, end, core_begin, core_end;
};

// The 1-D plan along one side; plan_tiles is its outer product.
std::vector<Span> plan_side(int64_t length, int64_t tile, int64_t multiple, int64_t margin) {
  if (tile <= 0 || length <= tile) return {{0, length, 0, length}};
  const int64_t count = (length + tile - 1) / tile;
  const int64_t core = round_up((length + count - 1) / count, multiple);
  std::vector<Span> spans;
  for (int64_t start = 0; start < length; start += core) {
    const int64_t end = std::min(length, start + core);
    spans.push_back({std::max<int64_t>(0, start - margin), std::min(length, end + margin), start, end});
  }
  return spans;
}

}  // namespace

std::vector<Tile> plan_tiles(int64_t height, int64_t width, int tile, int multiple, int margin) {
  if (height < 1 || width < 1) throw Error("plan_tiles: empty image");
  if (multiple < 1) throw Error("plan_tiles: size multiple must be >= 1");
  const int64_t m = multiple;
  const int64_t core = tile <= 0 ? 0 : round_up(tile, m);
  const int64_t pad = round_up(std::max(margin, 0), m);
  std::vector<Tile> tiles;
  for (const Span& ys : plan_side(height, core, m, pad))
    for (const Span& xs : plan_side(width, core, m, pad))
      tiles.push_back({ys.begin, ys.end, xs.begin, xs.end, ys.core_begin, ys.core_end, xs.core_begin, xs.core_end});
  return tiles;
}

void run_tiled(InferenceModel& model, const std::vector<TiledImage*>& images, const TileOptions& options) {
  if (options.batch < 1) throw UsageError("batch must be >= 1, got " + std::to_string(options.batch));
  if (options.tile < 0) throw UsageError("tile must be >= 0, got " + std::to_string(options.tile));
  const int multiple = model.info().arch.size_multiple();
  const int margin = options.margin >= 0 ? options.margin : model.receptive_radius();
  torch::NoGradGuard no_grad;

  struct Job {
    TiledImage* image;
    Tile tile;
  };
  // Windows grouped by shape; std::map keeps the order deterministic.
  std::map<std::pair<int64_t, int64_t>, std::vector<Job>> groups;
  for (TiledImage* img : images)
    for (const Tile& t : plan_tiles(img->height(), img->width(), options.tile, multiple, margin))
      groups[{t.y1 - t.y0, t.x1 - t.x0}].push_back({img, t});

  for (const auto& [shape, jobs] : groups) {
    // Windows share a pass up to `batch` of them and `batch_pixels` in all (at least one): small
    // images gain from batching, large windows only multiply the activations held at once.
    const int64_t window_pixels = shape.first * shape.second;
    const int64_t by_pixels = options.batch_pixels > 0 ? std::max<int64_t>(1, options.batch_pixels / window_pixels)
                                                       : options.batch;
    const size_t per_pass = static_cast<size_t>(std::min<int64_t>(options.batch, by_pixels));
    for (size_t first = 0; first < jobs.size(); first += per_pass) {
      const size_t last = std::min(jobs.size(), first + per_pass);
      std::vector<torch::Tensor> windows;
      for (size_t k = first; k < last; ++k) {
        windows.push_back(jobs[k].image->read(jobs[k].tile));
        if (windows.back().dim() != 3 || windows.back().size(0) != model.channels())
          throw Error("run_tiled: expected " + std::to_string(model.channels()) + " x H x W images");
      }
      torch::Tensor in = torch::stack(windows).to(options.device, torch::kFloat);
      windows.clear();
      torch::Tensor out = model.forward(in);
      // A residual head's output is input - noise: scaling the change scales the noise removed.
      if (options.strength != 1) out = in + options.strength * (out - in);
      out = out.to(torch::kCPU, torch::kFloat);
      for (size_t k = first; k < last; ++k) {
        const Tile& t = jobs[k].tile;
        jobs[k].image->write(t, out[static_cast<int64_t>(k - first)]
                                    .slice(1, t.core_y0 - t.y0, t.core_y1 - t.y0)
                                    .slice(2, t.core_x0 - t.x0, t.core_x1 - t.x0));
      }
    }
  }
}

namespace {

// A float C x H x W tensor and the output it is denoised into.
class TensorImage : public TiledImage {
 public:
  TensorImage(const torch::Tensor& input, torch::Tensor output) : input_(input), output_(std::move(output)) {}
  int64_t height() const override { return input_.size(1); }
  int64_t width() const override { return input_.size(2); }
  torch::Tensor read(const Tile& t) const override { return input_.slice(1, t.y0, t.y1).slice(2, t.x0, t.x1); }
  void write(const Tile& t, const torch::Tensor& core) override {
    output_.slice(1, t.core_y0, t.core_y1).slice(2, t.core_x0, t.core_x1).copy_(core);
  }

 private:
  torch::Tensor input_, output_;
};

// Some planes of a decoded image (any depth) as the model's channels, written back into the same
// planes of an output image of the same layout. With `gray_as_colour` the single plane is fed as
// three equal channels and the output's BT.601 luma is kept (denoise_images' rule).
class MatPlanes : public TiledImage {
 public:
  MatPlanes(const cv::Mat& input, cv::Mat& output, std::vector<int> planes, bool gray_as_colour)
      : input_(input), output_(output), planes_(std::move(planes)), gray_as_colour_(gray_as_colour) {}
  int64_t height() const override { return input_.rows; }
  int64_t width() const override { return input_.cols; }
  torch::Tensor read(const Tile& t) const override {
    const cv::Mat roi = input_(rect(t.y0, t.y1, t.x0, t.x1));
    const int n = static_cast<int>(planes_.size());
    torch::Tensor chw = torch::empty({n, roi.rows, roi.cols}, torch::kFloat);
    for (int k = 0; k < n; ++k) plane_to_float(roi, planes_[k], chw[k].data_ptr<float>());
    return gray_as_colour_ ? chw.expand({3, roi.rows, roi.cols}) : chw;
  }
  void write(const Tile& t, const torch::Tensor& core_in) override {
    torch::Tensor core = gray_as_colour_ ? to_channels(core_in, 1) : core_in;
    cv::Mat roi = output_(rect(t.core_y0, t.core_y1, t.core_x0, t.core_x1));
    for (size_t k = 0; k < planes_.size(); ++k) {
      const cv::Mat samples = float_to_plane(core[static_cast<int64_t>(k)], output_.depth());  // as tensor_to_mat
      if (roi.channels() == 1)
        samples.copyTo(roi);  // into the ROI: same size and type
      else
        cv::insertChannel(samples, roi, planes_[k]);
    }
  }

 private:
  static cv::Rect rect(int64_t y0, int64_t y1, int64_t x0, int64_t x1) {
    return cv::Rect(static_cast<int>(x0), static_cast<int>(y0), static_cast<int>(x1 - x0), static_cast<int>(y1 - y0));
  }
  const cv::Mat& input_;
  cv::Mat& output_;
  std::vector<int> planes_;
  bool gray_as_colour_;
};

}  // namespace

std::vector<torch::Tensor> run_tiled(InferenceModel& model, const std::vector<torch::Tensor>& images,
                                     const TileOptions& options) {
  std::vector<torch::Tensor> outputs;
  std::vector<TensorImage> views;
  views.reserve(images.size());
  for (const torch::Tensor& img : images) {
    if (img.dim() != 3 || img.size(0) != model.channels())
      throw Error("run_tiled: expected " + std::to_string(model.channels()) + " x H x W images");
    outputs.push_back(torch::empty(img.sizes(), img.options().dtype(torch::kFloat).device(torch::kCPU)));
    views.emplace_back(img, outputs.back());
  }
  std::vector<TiledImage*> pointers;
  for (TensorImage& v : views) pointers.push_back(&v);
  run_tiled(model, pointers, options);
  return outputs;
}

std::vector<torch::Tensor> denoise_images(InferenceModel& model, const std::vector<torch::Tensor>& images,
                                          const TileOptions& options) {
  const int channels = model.channels();
  // What the model is run on: per input image, the indices of its model-sized planes.
  std::vector<torch::Tensor> inputs;
  std::vector<std::vector<size_t>> parts(images.size());
  for (size_t i = 0; i < images.size(); ++i) {
    const torch::Tensor& img = images[i];
    if (img.dim() != 3 || (img.size(0) != 1 && img.size(0) != 3))
      throw Error("denoise_images: expected 1 or 3 x H x W images");
    if (img.size(0) == channels) {
      parts[i].push_back(inputs.size());
      inputs.push_back(img);
    } else if (channels == 1) {
      for (int64_t c = 0; c < 3; ++c) {
        parts[i].push_back(inputs.size());
        inputs.push_back(img.slice(0, c, c + 1));
      }
    } else {
      parts[i].push_back(inputs.size());
      inputs.push_back(to_channels(img, channels));
    }
  }
  std::vector<torch::Tensor> results = run_tiled(model, inputs, options);
  std::vector<torch::Tensor> outputs;
  for (size_t i = 0; i < images.size(); ++i) {
    torch::Tensor out;
    if (parts[i].size() == 3) {
      out = torch::cat({results[parts[i][0]], results[parts[i][1]], results[parts[i][2]]}, 0);
    } else {
      out = results[parts[i][0]];
      if (out.size(0) != images[i].size(0)) out = to_channels(out, static_cast<int>(images[i].size(0)));
    }
    outputs.push_back(out.clamp_(0, 1));  // in place: these are our own tensors, and full-size
  }
  return outputs;
}

std::vector<cv::Mat> denoise_mats(InferenceModel& model, const std::vector<cv::Mat>& images,
                                  const TileOptions& options) {
  const int channels = model.channels();
  std::vector<cv::Mat> outputs(images.size());
  std::vector<MatPlanes> views;
  views.reserve(3 * images.size());
  for (size_t i = 0; i < images.size(); ++i) {
    const cv::Mat& img = images[i];
    const int depth = img.depth();
    if (img.empty() || img.dims != 2 || (img.channels() != 1 && img.channels() != 3) ||
        (depth != CV_8U && depth != CV_16U && depth != CV_32F))
      throw Error("denoise_mats: expected gray or BGR images of 8-bit, 16-bit or float samples");
    outputs[i].create(img.rows, img.cols, img.type());
    if (img.channels() == channels) {
      // OpenCV's B, G, R planes are the model's channels 2, 1, 0.
      views.emplace_back(img, outputs[i], channels == 3 ? std::vector<int>{2, 1, 0} : std::vector<int>{0}, false);
    } else if (channels == 1) {
      for (int c = 0; c < 3; ++c) views.emplace_back(img, outputs[i], std::vector<int>{c}, false);
    } else {
      views.emplace_back(img, outputs[i], std::vector<int>{0}, true);
    }
  }
  std::vector<TiledImage*> pointers;
  for (MatPlanes& v : views) pointers.push_back(&v);
  run_tiled(model, pointers, options);
  return outputs;
}


}  // namespace bottleneck
