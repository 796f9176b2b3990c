// What a photo carries through `denoise` (issue 19): EXIF (orientation, camera, date, GPS), the
// ICC profile and XMP, and gray photos stored as colour. The files are written and read back by
// Pillow (/usr/bin/python3), a second implementation, so the test does not grade our reader with
// our writer.
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>

#include <gtest/gtest.h>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "image/image_io.h"
#include "image/photo_metadata.h"
#include "util/atomic_file.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace bottleneck;
using bottleneck::test::run_cli;
using bottleneck::test::TempDir;

namespace {

const std::string kFlags = " --threads 1 ";

// Runs a Pillow script (argv[1] = `dir`), returning its stdout; fails the test if it fails.
std::string run_python(const TempDir& dir, const std::string& script) {
  const std::string path = dir / "script.py";
  std::ofstream(path) << "import sys, os\nfrom PIL import Image, ImageCms, ImageOps\nimport numpy as np\nD = sys.argv[1]\n"
                      << script;
  const auto r = test::run_command(std::string(test::kSystemPython) + " " + path + " " + dir.path() + " 2>&1");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  return r.output;
}

// Pillow writes the inputs: a 60 x 40 JPEG with orientation 6 and camera, date, GPS tags and an
// sRGB ICC profile; a PNG with orientation 8 (eXIf) and the same profile; a JPEG with none.
const char* kWriteInputs = R"(
a = np.zeros((40, 60, 3), np.uint8)
a[:, :] = (40, 90, 160)
a[:10, :20] = (230, 40, 30)     # a red block at the stored top left
a[25:, 30:] = (30, 200, 60)
icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
def exif(orientation):
    e = Image.Exif()
    e[0x0112] = orientation
    e[0x010F] = "TestCam"
    e[0x0110] = "Model X"
    e[0x0132] = "2026:12:01 10:00:00"
    e[0x8825] = {1: "N", 2: (48.0, 51.0, 24.0)}
    return e
os.makedirs(D + "/in", exist_ok=True)
Image.fromarray(a).save(D + "/in/o6.jpg", exif=exif(6), icc_profile=icc, quality=95)
Image.fromarray(a).save(D + "/in/o8.png", exif=exif(8), icc_profile=icc)
Image.fromarray(a).save(D + "/in/plain.jpg", quality=95)
open(D + "/icc.bin", "wb").write(icc)
)";

// Pillow reads an output back: "SIZE WxH ORIENT o MAKE m GPS yes|no ICC same|none|other".
const char* kReadOutput = R"(
icc = open(D + "/icc.bin", "rb").read()
for name in sys.stdin.read().split():
    im = Image.open(D + "/" + name)
    e = im.getexif()
    gps = e.get_ifd(0x8825)
    got = im.info.get("icc_profile")
    print(name, "SIZE %dx%d" % im.size, "ORIENT", e.get(0x0112, "-"), "MAKE", e.get(0x010F, "-"),
          "GPS", "yes" if gps.get(1) == "N" else "no",
          "ICC", "none" if not got else "same" if got == icc else "other")
)";

std::string read_outputs(const TempDir& dir, const std::string& names) {
  const std::string path = dir / "read.py";
  std::ofstream(path) << "import sys\nfrom PIL import Image\nD = sys.argv[1]\n" << kReadOutput;
  const auto r = test::run_command("echo '" + names + "' | " + test::kSystemPython + " " + path + " " + dir.path() + " 2>&1");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  return r.output;
}

// "mean PSNR 20.17 dB noisy -> 31.50 dB denoised" -> {20.17, 31.50}
std::pair<double, double> psnrs(const std::string& output) {
  std::smatch m;
  if (!std::regex_search(output, m, std::regex("mean PSNR ([0-9.]+) dB noisy -> ([0-9.]+) dB denoised"))) return {-1, -1};
  return {std::stod(m[1]), std::stod(m[2])};
}

}  // namespace

TEST(PhotoMetadata, TheDecoderKeepsPixelsAsStoredWhateverTheOrientation) {
  ASSERT_TRUE(test::system_python_has("PIL")) << "scripts/setup.sh installs python3-pil";
  TempDir dir;
  run_python(dir, kWriteInputs);
  // Measured, not assumed: OpenCV 4.6's IMREAD_UNCHANGED applies no EXIF orientation.
  const ImageSamples s = load_samples(dir / "in/o6.jpg", kDefaultMaxPixels, ReadMetadata::kYes);
  EXPECT_EQ(s.color.cols, 60);
  EXPECT_EQ(s.color.rows, 40);
  EXPECT_EQ(s.metadata.orientation, 6);
  EXPECT_FALSE(s.metadata.exif.empty());
  const std::string icc = read_file(dir / "icc.bin");
  EXPECT_EQ(s.metadata.icc, std::vector<uint8_t>(icc.begin(), icc.end()));
  EXPECT_TRUE(load_samples(dir / "in/o6.jpg").metadata.empty()) << "metadata is read only when asked";
  EXPECT_EQ(load_samples(dir / "in/o8.png", kDefaultMaxPixels, ReadMetadata::kYes).metadata.orientation, 8);
  EXPECT_TRUE(load_samples(dir / "in/plain.jpg", kDefaultMaxPixels, ReadMetadata::kYes).metadata.exif.empty());
}

TEST(PhotoMetadata, DenoisedPhotosKeepExifOrientationAndIccInJpegPngAndTiff) {
  ASSERT_TRUE(test::system_python_has("PIL")) << "scripts/setup.sh installs python3-pil";
  TempDir dir;
  run_python(dir, kWriteInputs);
  auto r = run_cli("denoise --model gaussian " + dir / "in" + " " + dir / "out" + kFlags);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string same = read_outputs(dir, "out/o6.jpg out/o8.png out/plain.jpg");
  EXPECT_NE(same.find("out/o6.jpg SIZE 60x40 ORIENT 6 MAKE TestCam GPS yes ICC same"), std::string::npos) << same;
  EXPECT_NE(same.find("out/o8.png SIZE 60x40 ORIENT 8 MAKE TestCam GPS yes ICC same"), std::string::npos) << same;
  EXPECT_NE(same.find("out/plain.jpg SIZE 60x40 ORIENT - MAKE - GPS no ICC none"), std::string::npos) << same;
  // A standard eXIf chunk (which browsers read), not libexiv2's "Raw profile type exif" text.
  const std::string png = read_file(dir / "out/o8.png");
  EXPECT_NE(png.find("eXIf"), std::string::npos);
  EXPECT_EQ(png.find("Raw profile type exif"), std::string::npos);

  for (const std::string format : {"png", "tif"}) {
    SCOPED_TRACE(format);
    r = run_cli("denoise --model gaussian " + dir / "in/o6.jpg" + " " + dir / ("o6." + format) + kFlags);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    const std::string got = read_outputs(dir, "o6." + format);
    EXPECT_NE(got.find("SIZE 60x40 ORIENT 6 MAKE TestCam GPS yes ICC same"), std::string::npos) << got;
  }
}

TEST(PhotoMetadata, FormatsWithoutMetadataGetUprightPixelsAndANote) {
  ASSERT_TRUE(test::system_python_has("PIL")) << "scripts/setup.sh installs python3-pil";
  TempDir dir;
  run_python(dir, kWriteInputs);
  const auto r = run_cli("denoise --model gaussian " + dir / "in/o6.jpg" + " " + dir / "o6.bmp" + kFlags);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("a .bmp output gets no metadata: its EXIF and ICC profile dropped"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("pixels turned upright (EXIF orientation 6)"), std::string::npos) << r.output;
  // Upright as a viewer shows the input: Pillow's exif_transpose of it, to JPEG and denoising error.
  const std::string out = run_python(dir, R"(
want = np.asarray(ImageOps.exif_transpose(Image.open(D + "/in/o6.jpg")), np.float64)
got = np.asarray(Image.open(D + "/o6.bmp"), np.float64)
print("SHAPE", got.shape, want.shape, "ERR %.1f" % np.abs(got - want).mean() if got.shape == want.shape else "")
)");
  EXPECT_NE(out.find("SHAPE (60, 40, 3) (60, 40, 3) ERR"), std::string::npos) << out;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(out, m, std::regex("ERR ([0-9.]+)"))) << out;
  EXPECT_LT(std::stod(m[1]), 6.0) << out;

  // WebP likewise (libexiv2 0.27 writes a broken WebP ICC chunk): a valid file, upright.
  const auto w = run_cli("denoise --model gaussian " + dir / "in/o6.jpg" + " " + dir / "o6.webp" + kFlags);
  ASSERT_EQ(w.exit_code, 0) << w.output;
  EXPECT_NE(w.output.find("a .webp output gets no metadata"), std::string::npos) << w.output;
  const std::string webp = run_python(dir, "print('SIZE %dx%d' % Image.open(D + '/o6.webp').size)\n");
  EXPECT_NE(webp.find("SIZE 40x60"), std::string::npos) << webp;
}

TEST(PhotoMetadata, ApplyOrientationMatchesPillowForAllEight) {
  ASSERT_TRUE(test::system_python_has("PIL")) << "scripts/setup.sh installs python3-pil";
  TempDir dir;
  // Every pixel distinct, so any wrong flip or turn shows.
  run_python(dir, R"(
a = (np.arange(5 * 7 * 3).reshape(5, 7, 3) * 2).astype(np.uint8)
for o in range(1, 9):
    e = Image.Exif()
    e[0x0112] = o
    Image.fromarray(a).save(D + "/o%d.png" % o, exif=e)
    ImageOps.exif_transpose(Image.open(D + "/o%d.png" % o)).save(D + "/want%d.png" % o)
)");
  for (int o = 1; o <= 8; ++o) {
    SCOPED_TRACE(o);
    const ImageSamples s = load_samples(dir / ("o" + std::to_string(o) + ".png"), kDefaultMaxPixels, ReadMetadata::kYes);
    ASSERT_EQ(s.metadata.orientation, o);
    const cv::Mat got = apply_orientation(s.color, o);
    const cv::Mat want = cv::imread(dir / ("want" + std::to_string(o) + ".png"), cv::IMREAD_UNCHANGED);
    ASSERT_EQ(got.size(), want.size());
    EXPECT_EQ(cv::norm(got, want, cv::NORM_INF), 0.0);
  }
}

TEST(PhotoMetadata, GrayStoredAsColourIsDenoisedAsGray) {
  ASSERT_TRUE(test::system_python_has("PIL")) << "scripts/setup.sh installs python3-pil";
  TempDir dir;
  // One gray picture as a gray PNG, as RGB with equal channels and as a gray + alpha PNG, each
  // named img.png in its own folder so the added noise (seeded by the relative path) is the same.
  const cv::Mat gray = tensor_to_mat(test::synthetic_image(1, 64, 64, 11), CV_8U);
  fs::create_directories(dir / "gray");
  ASSERT_TRUE(cv::imwrite(dir / "gray/img.png", gray));
  run_python(dir, R"(
g = np.asarray(Image.open(D + "/gray/img.png"))
os.makedirs(D + "/rgb"); os.makedirs(D + "/la")
Image.fromarray(np.stack([g, g, g], -1)).save(D + "/rgb/img.png")
alpha = (np.arange(64 * 64).reshape(64, 64) % 200 + 50).astype(np.uint8)
Image.fromarray(np.stack([g, alpha], -1), "LA").save(D + "/la/img.png")
)");
  std::map<std::string, std::pair<double, double>> result;
  for (const std::string name : {"gray", "rgb", "la"}) {
    const auto r = run_cli("denoise " + dir / name + " " + dir / (name + "-out") + " --add-noise gaussian:25" + kFlags);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    result[name] = psnrs(r.output);
    if (name != "gray") {
      EXPECT_NE(r.output.find("three colour channels are equal: denoised as gray"), std::string::npos) << r.output;
    }
  }
  EXPECT_GT(result["gray"].second - result["gray"].first, 5.0) << "the gray model must denoise";
  EXPECT_NEAR(result["rgb"].first, result["gray"].first, 0.01);
  EXPECT_NEAR(result["rgb"].second, result["gray"].second, 0.01);
  EXPECT_NEAR(result["la"].second, result["gray"].second, 0.01);

  // Written as read: three equal planes (and the alpha untouched).
  const cv::Mat rgb = cv::imread(dir / "rgb-out/img.png", cv::IMREAD_UNCHANGED);
  ASSERT_EQ(rgb.channels(), 3);
  EXPECT_TRUE(has_equal_planes(rgb));
  const cv::Mat la = cv::imread(dir / "la-out/img.png", cv::IMREAD_UNCHANGED);
  const cv::Mat la_in = cv::imread(dir / "la/img.png", cv::IMREAD_UNCHANGED);
  ASSERT_EQ(la.channels(), 4);
  cv::Mat a_in, a_out, bgr;
  cv::extractChannel(la_in, a_in, 3);
  cv::extractChannel(la, a_out, 3);
  EXPECT_EQ(cv::norm(a_in, a_out, cv::NORM_INF), 0.0);
  cv::cvtColor(la, bgr, cv::COLOR_BGRA2BGR);
  EXPECT_TRUE(has_equal_planes(bgr));

  // Without added noise too (the samples path): the output's planes are equal.
  const auto r = run_cli("denoise " + dir / "rgb" + " " + dir / "rgb-plain" + kFlags);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(has_equal_planes(cv::imread(dir / "rgb-plain/img.png", cv::IMREAD_UNCHANGED)));
}
