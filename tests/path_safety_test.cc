// Paths: outputs stay inside the output folder whatever the input names and links, inputs are
// never modified, and no command writes into its own input tree unless told to.
#include <sys/stat.h>

#include <filesystem>
#include <map>

#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>
#include <torch/torch.h>

#include "util/atomic_file.h"
#include "formats/checkpoint.h"
#include "image/image_io.h"
#include "nets/models.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace bottleneck;
using bottleneck::test::CommandResult;
using bottleneck::test::run_cli;
using bottleneck::test::TempDir;

namespace {

std::string gray_model(const TempDir& dir) {
  ArchSpec spec;
  spec.widths = {8, 16};
  CheckpointInfo info;
  info.arch = spec;
  save_checkpoint(dir / "model.ckpt", *make_model(spec), nullptr, info);
  return dir / "model.ckpt";
}

void write_image(const std::string& path, uint64_t seed) {
  fs::create_directories(fs::path(path).parent_path());
  ASSERT_TRUE(cv::imwrite(path, tensor_to_mat(test::synthetic_image(1, 20, 24, seed), CV_8U))) << path;
}

// Every entry under `dir`: files by content, links by target, folders as "dir".
std::map<std::string, std::string> tree(const std::string& dir) {
  std::map<std::string, std::string> entries;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    const std::string rel = e.path().lexically_relative(dir).generic_string();
    if (e.is_symlink())
      entries[rel] = "-> " + fs::read_symlink(e.path()).string();
    else if (e.is_directory())
      entries[rel] = "dir";
    else
      entries[rel] = read_file(e.path().string());
  }
  return entries;
}

const std::string kFlags = " --threads 1 ";

}  // namespace

TEST(PathSafety, OddFileNamesLandWhereTheyShouldInsideTheOutput) {
  TempDir dir;
  const std::string model = gray_model(dir);
  const std::vector<std::string> names = {"..png", "...png", "-rf.png", " lead space.png", "a..b.png",
                                          "sub/..png", "日本.png", "semi;colon $(x).png", "new\nline.png"};
  for (size_t i = 0; i < names.size(); ++i) write_image(dir / "in/" + names[i], i);
  const auto before = tree(dir / "in");

  const CommandResult r = run_cli("denoise --model " + model + " " + dir / "in" + " " + dir / "out" + kFlags);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const auto& name : names) EXPECT_TRUE(fs::is_regular_file(dir / "out/" + name)) << name;
  // Nothing but those files (and the folder "sub") appeared, in the output or beside it.
  EXPECT_EQ(tree(dir / "out").size(), names.size() + 1);
  EXPECT_EQ(tree(dir.path()).size(), 1 + before.size() + 1 + 1 + names.size() + 1)
      << "model.ckpt, in/, its entries, out/, its entries";
  EXPECT_EQ(tree(dir / "in"), before);
}

TEST(PathSafety, SymbolicLinksNeverCarryOutputsOutOfTheOutputFolder) {
  TempDir dir;
  const std::string model = gray_model(dir);
  const std::string outside = dir / "outside";
  write_image(outside + "/victim.png", 1);  // read through a link in the input
  write_image(outside + "/elsewhere/keep.png", 2);
  write_image(dir / "in/a.png", 3);
  write_image(dir / "in/sub/b.png", 4);
  // Input links: to a file (read like a file) and to a folder outside (not followed, so a
  // link cannot make the job walk the whole disk or loop).
  fs::create_symlink(outside + "/victim.png", dir / "in/linked.png");
  fs::create_symlink(outside, dir / "in/linked_dir");
  // Output links planted before the job: a folder link leading out, and a file link.
  fs::create_directories(dir / "out");
  fs::create_symlink(outside + "/elsewhere", dir / "out/sub");
  write_image(outside + "/planted.png", 5);
  fs::create_symlink(outside + "/planted.png", dir / "out/a.png");
  const auto outside_before = tree(outside);
  const auto in_before = tree(dir / "in");

  // The planted link is a file the job did not write: the job refuses to start.
  const CommandResult refused = run_cli("denoise --model " + model + " " + dir / "in" + " " + dir / "out" + kFlags);
  EXPECT_EQ(refused.exit_code, 2) << refused.output;
  EXPECT_NE(refused.output.find(dir / "out/a.png: already exists"), std::string::npos) << refused.output;
  // Told to replace what is there, it still replaces regular files only.
  const CommandResult r = run_cli("denoise --model " + model + " " + dir / "in" + " " + dir / "out --overwrite" + kFlags);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("denoised 1, skipped 0, failed 2"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(dir / "out/sub/b.png: refusing to write through a symbolic link that leads out of the output folder"),
            std::string::npos) << r.output;
  EXPECT_EQ(tree(outside), outside_before) << "nothing outside the output folder changes";
  EXPECT_EQ(tree(dir / "in"), in_before);
  // The planted file link is refused (a writer replaces regular files only) and left alone; the
  // linked input was read.
  EXPECT_NE(r.output.find(dir / "out/a.png: is a symbolic link, not a regular file"), std::string::npos) << r.output;
  EXPECT_TRUE(fs::is_symlink(dir / "out/a.png"));
  EXPECT_TRUE(fs::is_regular_file(dir / "out/linked.png"));
  EXPECT_FALSE(fs::exists(dir / "out/linked_dir"));

  // The output folder itself may be a link: that is where the user sends the results.
  fs::create_directories(dir / "real_out");
  fs::create_symlink(dir / "real_out", dir / "out_link");
  const CommandResult linked = run_cli("denoise --model " + model + " " + dir / "in" + " " + dir / "out_link" + kFlags);
  EXPECT_EQ(linked.exit_code, 0) << linked.output;
  EXPECT_TRUE(fs::is_regular_file(dir / "real_out/sub/b.png"));
}

TEST(PathSafety, TrainRefusesARunDirectoryInsideItsInputs) {
  TempDir dir;
  test::write_synthetic_images(dir / "data", 2, 1, 32, 32, 1);
  test::write_synthetic_images(dir / "val", 1, 1, 32, 32, 5);
  const auto data_before = tree(dir / "data");
  const std::string net = " --arch unet --widths 8,16 --patch 16 --batch 2 --iters 1" + kFlags;
  for (const std::string& out : {dir / "data/run", dir / "data", dir / "val/deep/run", dir / "data/../data/x"}) {
    SCOPED_TRACE(out);
    const CommandResult r = run_cli("train --data " + dir / "data/ --val " + dir / "val --out " + out + net);
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_NE(r.output.find("lies inside the"), std::string::npos) << r.output;
  }
  EXPECT_EQ(tree(dir / "data"), data_before);
  EXPECT_FALSE(fs::exists(dir / "val/deep"));
  // A sibling whose name starts like the data folder is not inside it.
  const CommandResult ok = run_cli("train --data " + dir / "data --out " + dir / "data-run" + net);
  EXPECT_EQ(ok.exit_code, 0) << ok.output;
}

// Writers replace regular files only: a FIFO, a device, a symbolic link or a folder at the
// target is refused and left as it was (a rename would have replaced it; as root, /dev/full).
TEST(PathSafety, WritersNeverReplaceWhatIsNotARegularFile) {
  TempDir dir;
  const std::string model = gray_model(dir);
  write_image(dir / "clean/a.png", 1);
  ASSERT_EQ(::mkfifo((dir / "fifo").c_str(), 0666), 0);
  fs::create_symlink(dir / "target.json", dir / "link.json");
  fs::create_directories(dir / "folder.pt");
  for (const std::string& out : {dir / "fifo", dir / "link.json", dir / "folder.pt"}) {
    auto e = run_cli("export --checkpoint " + model + " --output " + out);
    EXPECT_NE(e.exit_code, 0) << out;
    EXPECT_NE(e.output.find("not a regular file"), std::string::npos) << e.output;
    auto j = run_cli("eval --model " + model + " --clean " + dir / "clean --no-nlm --threads 1 --json " + out);
    EXPECT_NE(j.exit_code, 0) << out;
    EXPECT_NE(j.output.find("refusing to replace it"), std::string::npos) << j.output;
  }
  EXPECT_TRUE(fs::is_fifo(dir / "fifo"));
  EXPECT_TRUE(fs::is_symlink(dir / "link.json"));
  EXPECT_FALSE(fs::exists(dir / "target.json"));
  EXPECT_TRUE(fs::is_directory(dir / "folder.pt"));
  // The library refuses it too, for every writer.
  EXPECT_THROW(write_file_atomically(dir / "fifo", std::string("x")), Error);
}

// No command writes its output over one of its inputs, however the path is spelt (a hard link
// is the same file).
TEST(PathSafety, OutputsNeverReplaceTheirOwnInputs) {
  TempDir dir;
  const std::string model = gray_model(dir);
  const std::string before = read_file(model);
  auto e = run_cli("export --checkpoint " + model + " --output " + dir / "./model.ckpt");
  EXPECT_EQ(e.exit_code, 2) << e.output;
  EXPECT_NE(e.output.find("refusing to write over it"), std::string::npos) << e.output;
  EXPECT_EQ(read_file(model), before);

  write_image(dir / "x.png", 2);
  const std::string image = read_file(dir / "x.png");
  fs::create_hard_link(dir / "x.png", dir / "alias.png");
  for (const std::string& json : {dir / "x.png", dir / "alias.png"}) {
    auto j = run_cli("eval --model " + model + " --clean " + dir / "x.png --no-nlm --threads 1 --json " + json);
    EXPECT_EQ(j.exit_code, 2) << j.output;
  }
  write_image(dir / "set/y.png", 3);
  auto in_folder = run_cli("eval --model " + model + " --clean " + dir / "set --no-nlm --threads 1 --json " + dir / "set/y.png");
  EXPECT_EQ(in_folder.exit_code, 2) << in_folder.output;
  EXPECT_EQ(read_file(dir / "x.png"), image);
}

// A file already where denoise would write was not written by this job: it may be the user's
// (S/a.dn.png beside S/a.png). It is replaced only with --overwrite, kept with --skip-existing,
// and otherwise the job refuses before doing anything, naming it.
TEST(PathSafety, DenoiseNeverReplacesAFileItDidNotWrite) {
  TempDir dir;
  const std::string model = gray_model(dir);
  write_image(dir / "S/a.png", 1);
  write_image(dir / "S/b.png", 2);
  write_file_atomically(dir / "S/a.dn.png", "the user's own file");
  const std::string cmd = "denoise --model " + model + " " + dir / "S " + dir / "S --suffix dn" + kFlags;
  CommandResult r = run_cli(cmd);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find(dir / "S/a.dn.png: already exists; denoise replaces no file it has not written itself: pass "
                                "--overwrite"), std::string::npos) << r.output;
  EXPECT_EQ(read_file(dir / "S/a.dn.png"), "the user's own file");
  EXPECT_FALSE(fs::exists(dir / "S/b.dn.png")) << "refused before any work";

  r = run_cli(cmd + " --skip-existing");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("denoised 1, skipped 1, failed 0"), std::string::npos) << r.output;
  EXPECT_EQ(read_file(dir / "S/a.dn.png"), "the user's own file");
  ASSERT_TRUE(fs::exists(dir / "S/b.dn.png"));

  // A rerun (other settings, say) must say what to do with the first run's results.
  r = run_cli(cmd);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("already exists (as do 1 more of this job's outputs)"), std::string::npos) << r.output;
  r = run_cli(cmd + " --overwrite");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("denoised 2, skipped 0, failed 0"), std::string::npos) << r.output;
  EXPECT_EQ(load_image(dir / "S/a.dn.png").pixels.size(0), 1);

  // The same in a folder of its own; nothing is written for the other input either.
  fs::create_directories(dir / "out/sub");
  write_file_atomically(dir / "out/sub/b.png", "mine too");
  write_image(dir / "S/sub/b.png", 3);
  r = run_cli("denoise --model " + model + " " + dir / "S " + dir / "out" + kFlags);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find(dir / "out/sub/b.png: already exists"), std::string::npos) << r.output;
  EXPECT_EQ(tree(dir / "out").size(), 2u) << "sub and sub/b.png, nothing else";
  EXPECT_EQ(read_file(dir / "out/sub/b.png"), "mine too");
}

// The output folder is compared with the input tree by device and inode: a symbolic link or a
// bind mount of the input folder (or of a folder in it) is the input folder, not a new place.
TEST(PathSafety, DenoiseKnowsTheInputFolderUnderAnotherName) {
  TempDir dir;
  const std::string model = gray_model(dir);
  write_image(dir / "in/a.png", 1);
  write_image(dir / "in/sub/b.png", 2);
  const auto before = tree(dir / "in");
  fs::create_directory_symlink(dir / "in", dir / "link");
  const std::string cli = std::string("'") + BOTTLENECK_CLI_PATH + "' ";
  CommandResult r = run_cli("denoise --model " + model + " " + dir / "in " + dir / "link" + kFlags);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("the output folder is the input folder"), std::string::npos) << r.output;

  // Bind mounts live in a private mount namespace, so none outlives the test.
  if (test::run_command("unshare -m true").exit_code != 0) GTEST_SKIP() << "no mount namespace here (needs root or user namespaces)";
  fs::create_directories(dir / "view");
  fs::create_directories(dir / "subview");
  auto with_bind_mount = [&](const std::string& source, const std::string& view, const std::string& args) {
    return test::run_command("unshare -m sh -c \"mount --bind '" + source + "' '" + view + "' && " + cli + args + "\"");
  };
  const std::string denoise = "denoise --model " + model + " " + dir / "in ";
  r = with_bind_mount(dir / "in", dir / "view", denoise + dir / "view" + kFlags);
  if (r.output.find("mount:") != std::string::npos) GTEST_SKIP() << "mount --bind not permitted: " << r.output;
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("the output folder is the input folder"), std::string::npos) << r.output;
  for (const std::string out : {dir / "subview", dir / "subview/deeper"}) {
    r = with_bind_mount(dir / "in/sub", dir / "subview", denoise + out + kFlags);
    EXPECT_EQ(r.exit_code, 2) << out << ": " << r.output;
    EXPECT_NE(r.output.find("the output folder lies inside the input folder"), std::string::npos) << r.output;
  }
  EXPECT_EQ(tree(dir / "in"), before);

  // With a suffix the outputs go beside the inputs, and a rerun does not take them for inputs.
  for (const std::string again : {"", " --overwrite"}) {
    r = with_bind_mount(dir / "in", dir / "view", denoise + dir / "view --suffix dn" + kFlags + again);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("denoised 2, skipped 0, failed 0"), std::string::npos) << r.output;
  }
  EXPECT_TRUE(fs::exists(dir / "in/sub/b.dn.png"));
  EXPECT_EQ(tree(dir / "in").size(), before.size() + 2);
}

// Inputs are regular files: opening a FIFO waits for a writer forever (each of these hung).
TEST(PathSafety, AFifoGivenAsAnInputIsRefusedNotWaitedOn) {
  TempDir dir;
  ASSERT_EQ(::mkfifo((dir / "fifo").c_str(), 0666), 0);
  write_image(dir / "in/a.png", 1);
  const std::string fifo = dir / "fifo";
  for (const std::string args : {"info " + fifo, "denoise --model " + fifo + " " + dir / "in " + dir / "out" + kFlags,
                                 "train --config " + fifo + " --data " + dir / "in --out " + dir / "run" + kFlags}) {
    const CommandResult r = test::run_command("timeout 60 '" + std::string(BOTTLENECK_CLI_PATH) + "' " + args);
    EXPECT_NE(r.exit_code, 124) << args << ": still waiting on the FIFO after 60 s";
    EXPECT_NE(r.exit_code, 0) << args;
    EXPECT_NE(r.output.find(fifo + ": is a FIFO, not a regular file"), std::string::npos) << args << "\n" << r.output;
  }
  EXPECT_FALSE(fs::exists(dir / "out"));
}
