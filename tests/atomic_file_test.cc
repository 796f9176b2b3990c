#include "util/atomic_file.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "util/error.h"
#include "test_util.h"

namespace bottleneck {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

void write_bytes(const std::string& path, const std::string& bytes) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << bytes;
}

// The PID of a process that has exited and been reaped: no process has it (until the kernel
// hands it out again, which takes a full turn of the PID space).
pid_t dead_pid() {
  const pid_t pid = fork();
  if (pid == 0) _exit(0);
  waitpid(pid, nullptr, 0);
  return pid;
}

// Every file and link under `dir` (not folders), relative, sorted.
std::vector<std::string> tree(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (!e.is_directory() || e.is_symlink()) names.push_back(e.path().lexically_relative(dir).generic_string());
  std::sort(names.begin(), names.end());
  return names;
}

TEST(AtomicFile, WritesCompleteFilesAndLeavesNoTemporary) {
  TempDir dir;
  write_file_atomically(dir / "a.txt", "old");
  write_file_atomically(dir / "a.txt", "new contents");
  EXPECT_EQ(read_file(dir / "a.txt"), "new contents");
  EXPECT_THROW(write_atomically(dir / "b.png", [](const std::string& tmp) {
                 std::ofstream(tmp) << "half";
                 throw Error(tmp, "encoder failed");
               }),
               Error);
  EXPECT_EQ(tree(dir.path()), std::vector<std::string>{"a.txt"});
}

TEST(AtomicFile, RecognisesItsOwnTemporaryNamesOnly) {
  TempDir dir;
  std::vector<std::string> seen;
  for (const char* target : {"photo.png", "archive.tar.gz", "noext", ".hidden", "my.tmp-1-2.png"})
    write_atomically(dir / target, [&](const std::string& tmp) {
      seen.push_back(fs::path(tmp).filename().string());
      std::ofstream(tmp) << "x";
    });
  for (const std::string& name : seen) EXPECT_TRUE(is_atomic_temporary(name)) << name;

  for (const char* name : {".photo.tmp-12-0.png", ".photo.tmp-12-0", ".a.b.tmp-1-22.tif", ".my.tmp-1-2.tmp-3-4.png"})
    EXPECT_TRUE(is_atomic_temporary(name)) << name;
  for (const char* name : {"photo.png", ".photo.png", "photo.tmp-12-0.png", ".photo.tmp-12.png", ".photo.tmp--0.png",
                           ".photo.tmp-12-x.png", ".photo.tmp-x-0.png", ".photo.tmp-12-0.png.bak", ".tmp-12-0.png",
                           ".photo.tmp-0-0.png", ".notes.tmp", ".photo.tmp-1234567890123-0.png", ""})
    EXPECT_FALSE(is_atomic_temporary(name)) << name;
}

TEST(AtomicFile, RemovesStaleTemporariesOfDeadWritersAndNothingElse) {
  TempDir dir;
  const std::string dead = std::to_string(dead_pid()), alive = std::to_string(getpid());
  const std::string out = dir / "out";
  write_bytes(out + "/keep.png", "output");
  write_bytes(out + "/.img.tmp-" + dead + "-0.png", "half");
  write_bytes(out + "/sub/deeper/.img.tmp-" + dead + "-7.tif", "half");
  write_bytes(out + "/.img.tmp-" + alive + "-3.png", "a live writer's");  // this process: running
  write_bytes(out + "/.notes.tmp", "not ours");
  write_bytes(out + "/img.tmp-" + dead + "-0.png", "not hidden: not ours");
  fs::create_directories(out + "/.dir.tmp-" + dead + "-1.png");  // a folder, not a temporary
  // A link named like a temporary is not one: neither it nor what it points to is removed.
  write_bytes(dir / "outside.png", "elsewhere");
  fs::create_symlink(dir / "outside.png", out + "/.link.tmp-" + dead + "-2.png");
  // Links to folders are not followed out of the tree.
  write_bytes(dir / "other/.img.tmp-" + dead + "-4.png", "another tree");
  fs::create_directory_symlink(dir / "other", out + "/other_link");

  std::vector<std::string> removed = remove_stale_temporaries(out);
  std::sort(removed.begin(), removed.end());
  EXPECT_EQ(removed, (std::vector<std::string>{out + "/.img.tmp-" + dead + "-0.png",
                                               out + "/sub/deeper/.img.tmp-" + dead + "-7.tif"}));
  EXPECT_TRUE(fs::is_directory(out + "/.dir.tmp-" + dead + "-1.png"));
  EXPECT_EQ(tree(out), (std::vector<std::string>{".img.tmp-" + alive + "-3.png",
                                                 ".link.tmp-" + dead + "-2.png", ".notes.tmp",
                                                 "img.tmp-" + dead + "-0.png", "keep.png", "other_link"}));
  EXPECT_EQ(read_file(dir / "outside.png"), "elsewhere");
  EXPECT_TRUE(fs::exists(dir / "other/.img.tmp-" + dead + "-4.png"));
  EXPECT_TRUE(remove_stale_temporaries(dir / "missing").empty());
}

}  // namespace
}  // namespace bottleneck
