// The compressed file container: pinned layout, field round trips, and every damaged form
// (each truncation, each bit flip, bad fields behind valid checksums, future versions) refused
// with the right kind and a one-line reason.
#include <gtest/gtest.h>
#include <zlib.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <vector>

#include "codec/cdf.h"
#include "codec/container.h"
#include "codec/rans.h"
#include "util/error.h"

using namespace bottleneck;

namespace {

ContainerHeader sample_header() {
  ContainerHeader h;
  h.width = 768;
  h.height = 512;
  h.channels = 3;
  h.bit_depth = 8;
  h.quality = 0.013f;
  for (uint8_t i = 0; i < 16; ++i) h.model_id[i] = i;
  h.streams = {{192, 32, 48}, {128, 8, 12}};
  return h;
}

std::vector<std::vector<uint8_t>> sample_payloads() {
  std::vector<std::vector<uint8_t>> p = {std::vector<uint8_t>(1000), std::vector<uint8_t>(100)};
  std::mt19937_64 rng(1);
  for (auto& v : p)
    for (uint8_t& b : v) b = static_cast<uint8_t>(rng());
  return p;
}

uint32_t load32(const std::vector<uint8_t>& b, size_t at) {
  return uint32_t{b[at]} | uint32_t{b[at + 1]} << 8 | uint32_t{b[at + 2]} << 16 | uint32_t{b[at + 3]} << 24;
}

void store32(std::vector<uint8_t>& b, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) b[at + i] = static_cast<uint8_t>(v >> (8 * i));
}

uint32_t crc(const std::vector<uint8_t>& b, size_t size) {
  return static_cast<uint32_t>(crc32(crc32(0L, Z_NULL, 0), b.data(), static_cast<uInt>(size)));
}

// Recomputes both checksums after a test edits a file, so that only the edit is wrong.
void reseal(std::vector<uint8_t>& b) {
  if (b.size() < 48) return;
  const uint32_t count = load32(b, 40);
  const size_t crc_at = 44 + 16 * static_cast<size_t>(count);
  if (count > 8 || crc_at + 8 > b.size()) return;
  store32(b, crc_at, crc(b, crc_at));
  store32(b, b.size() - 4, crc(b, b.size() - 4));
}

ParsedContainer read(const std::vector<uint8_t>& b, size_t size) { return read_container(b.data(), size, "f.bnc"); }
ParsedContainer read(const std::vector<uint8_t>& b) { return read(b, b.size()); }

// The error's kind and reason (not prefixed by the path), or a test failure.
std::pair<ErrorKind, std::string> error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.path(), "f.bnc");
    EXPECT_EQ(std::string(e.what()), "f.bnc: " + e.reason());
    EXPECT_EQ(e.reason().find('\n'), std::string::npos);
    return {e.kind(), e.reason()};
  }
  ADD_FAILURE() << "no error";
  return {ErrorKind::kFailed, ""};
}

std::string corrupt_reason(const std::vector<uint8_t>& b, size_t size) {
  const auto [kind, reason] = error_of([&] { read(b, size); });
  EXPECT_EQ(kind, ErrorKind::kCorrupt) << reason;
  return reason;
}
std::string corrupt_reason(const std::vector<uint8_t>& b) { return corrupt_reason(b, b.size()); }

}  // namespace

TEST(Container, RoundTrips) {
  const std::vector<uint8_t> file = write_container(sample_header(), sample_payloads());
  const ParsedContainer c = read(file);
  const ContainerHeader h = sample_header();
  EXPECT_EQ(c.format_version, 1);
  EXPECT_EQ(c.header.width, h.width);
  EXPECT_EQ(c.header.height, h.height);
  EXPECT_EQ(c.header.channels, h.channels);
  EXPECT_EQ(c.header.bit_depth, h.bit_depth);
  EXPECT_EQ(c.header.quality, h.quality);
  EXPECT_EQ(c.header.model_id, h.model_id);
  EXPECT_EQ(c.header.streams, h.streams);
  EXPECT_EQ(c.payloads, sample_payloads());
}

TEST(Container, LayoutIsPinned) {
  const std::vector<uint8_t> b = write_container(sample_header(), sample_payloads());
  ASSERT_EQ(b.size(), 44 + 2 * 16 + 4 + 1100 + 4u);
  EXPECT_EQ(std::vector<uint8_t>(b.begin(), b.begin() + 8),
            (std::vector<uint8_t>{0x89, 'B', 'N', 'C', '\r', '\n', 0x1a, '\n'}));
  EXPECT_EQ(b[8] | b[9] << 8, 1);   // version
  EXPECT_EQ(b[10], 3);              // channels
  EXPECT_EQ(b[11], 8);              // bit depth
  EXPECT_EQ(load32(b, 12), 768u);   // width
  EXPECT_EQ(load32(b, 16), 512u);   // height
  float q;
  const uint32_t q_bits = load32(b, 20);
  std::memcpy(&q, &q_bits, 4);
  EXPECT_EQ(q, 0.013f);
  EXPECT_EQ(q_bits, 0x3c54fdf4u);   // IEEE-754 binary32 of 0.013f
  for (int i = 0; i < 16; ++i) EXPECT_EQ(b[24 + i], i);
  EXPECT_EQ(load32(b, 40), 2u);     // streams
  EXPECT_EQ(load32(b, 44), 192u);
  EXPECT_EQ(load32(b, 48), 32u);
  EXPECT_EQ(load32(b, 52), 48u);
  EXPECT_EQ(load32(b, 56), 1000u);
  EXPECT_EQ(load32(b, 60), 128u);
  EXPECT_EQ(load32(b, 64), 8u);
  EXPECT_EQ(load32(b, 68), 12u);
  EXPECT_EQ(load32(b, 72), 100u);
  EXPECT_EQ(load32(b, 76), crc(b, 76));  // header checksum
  EXPECT_EQ(std::vector<uint8_t>(b.begin() + 80, b.begin() + 1080), sample_payloads()[0]);
  EXPECT_EQ(std::vector<uint8_t>(b.begin() + 1080, b.begin() + 1180), sample_payloads()[1]);
  EXPECT_EQ(load32(b, 1180), crc(b, 1180));  // checksum of everything before it
}

TEST(Container, EveryFieldRoundTrips) {
  std::vector<ContainerHeader> headers;
  for (uint8_t channels : {1, 3})
    for (uint8_t depth : {8, 16}) {
      ContainerHeader h = sample_header();
      h.channels = channels, h.bit_depth = depth;
      headers.push_back(h);
    }
  for (uint32_t side : {1u, 2u, 65535u, kMaxImageSide}) {
    ContainerHeader h = sample_header();
    h.width = side, h.height = kMaxImageSide + 1 - side;
    headers.push_back(h);
  }
  for (float q : {0.0f, 1.0f, 7.5f, 1e-30f, std::numeric_limits<float>::denorm_min(), std::numeric_limits<float>::max()}) {
    ContainerHeader h = sample_header();
    h.quality = q;
    headers.push_back(h);
  }
  for (uint32_t count = 1; count <= kMaxStreams; ++count) {
    ContainerHeader h = sample_header();
    h.streams.clear();
    for (uint32_t i = 0; i < count; ++i) h.streams.push_back({i + 1, 3 * i + 1, 2 * i + 5});
    h.model_id.fill(static_cast<uint8_t>(0xf0 + count));
    headers.push_back(h);
  }
  ContainerHeader big = sample_header();
  big.streams = {{kMaxLatentChannels, 256, 256}, {1, kMaxImageSide, kMaxImageSide / 16}};  // up to 2^32 elements
  headers.push_back(big);

  for (const ContainerHeader& h : headers) {
    std::vector<std::vector<uint8_t>> payloads;
    for (size_t i = 0; i < h.streams.size(); ++i) payloads.push_back(std::vector<uint8_t>(i * 3, static_cast<uint8_t>(i)));
    const ParsedContainer c = read(write_container(h, payloads));
    EXPECT_EQ(c.header.width, h.width);
    EXPECT_EQ(c.header.height, h.height);
    EXPECT_EQ(c.header.channels, h.channels);
    EXPECT_EQ(c.header.bit_depth, h.bit_depth);
    EXPECT_EQ(std::memcmp(&c.header.quality, &h.quality, 4), 0);
    EXPECT_EQ(c.header.model_id, h.model_id);
    EXPECT_EQ(c.header.streams, h.streams);
    EXPECT_EQ(c.payloads, payloads);
  }
}

TEST(Container, WriterRefusesHeadersOutsideTheLimits) {
  const std::vector<std::pair<std::function<void(ContainerHeader&)>, std::string>> cases = {
      {[](ContainerHeader& h) { h.width = 0; }, "image width 0 outside 1..262144"},
      {[](ContainerHeader& h) { h.height = kMaxImageSide + 1; }, "image height 262145 outside 1..262144"},
      {[](ContainerHeader& h) { h.channels = 2; }, "channels 2, not 1 or 3"},
      {[](ContainerHeader& h) { h.bit_depth = 12; }, "bit depth 12, not 8 or 16"},
      {[](ContainerHeader& h) { h.quality = -1; }, "quality -1"},
      {[](ContainerHeader& h) { h.quality = std::nanf(""); }, "quality nan"},
      {[](ContainerHeader& h) { h.quality = HUGE_VALF; }, "quality inf"},
      {[](ContainerHeader& h) { h.streams.clear(); }, "stream count 0 outside 1..8"},
      {[](ContainerHeader& h) { h.streams.resize(9, {1, 1, 1}); }, "stream count 9 outside 1..8"},
      {[](ContainerHeader& h) { h.streams[1].channels = 0; }, "stream 1 channels 0 outside 1..65535"},
      {[](ContainerHeader& h) { h.streams[0].height = 0; }, "stream 0 height 0"},
      {[](ContainerHeader& h) { h.streams[0].width = kMaxImageSide + 1; }, "stream 0 width 262145"},
      {[](ContainerHeader& h) { h.streams[0] = {65535, 256, 257}; }, "stream 0 has 4311678720 elements, more than 4294967296"},
  };
  for (const auto& [edit, message] : cases) {
    ContainerHeader h = sample_header();
    edit(h);
    try {
      write_container(h, std::vector<std::vector<uint8_t>>(h.streams.size()));
      ADD_FAILURE() << message;
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kInvalidData);
      EXPECT_NE(std::string(e.what()).find("cannot write container: " + message), std::string::npos) << e.what();
    }
  }
  try {
    write_container(sample_header(), {{1, 2}});
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInvalidData);
    EXPECT_STREQ(e.what(), "cannot write container: 1 payloads for 2 streams");
  }
}

TEST(Container, EveryTruncationIsRefused) {
  const std::vector<uint8_t> b = write_container(sample_header(), sample_payloads());
  for (size_t size = 0; size < b.size(); ++size) {
    const std::string reason = corrupt_reason(b, size);
    if (size > 0) {
      EXPECT_EQ(reason.rfind("truncated: ", 0), 0u) << size << ": " << reason;
    }
  }
  EXPECT_EQ(corrupt_reason(b, 0), "empty file");
  EXPECT_EQ(corrupt_reason(b, 5), "truncated: 5 bytes, the header alone needs at least 64");
  EXPECT_EQ(corrupt_reason(b, 43), "truncated: 43 bytes, the header alone needs at least 64");
  EXPECT_EQ(corrupt_reason(b, 79), "truncated: 79 bytes, the header of 2 streams needs 80");
  EXPECT_EQ(corrupt_reason(b, 580), "truncated: header says 1100 payload bytes and a 4-byte checksum follow, 500 bytes remain");
  EXPECT_EQ(corrupt_reason(b, b.size() - 1),
            "truncated: header says 1100 payload bytes and a 4-byte checksum follow, 1103 bytes remain");
}

TEST(Container, TrailingBytesAreRefused) {
  std::vector<uint8_t> b = write_container(sample_header(), sample_payloads());
  b.push_back(0);
  EXPECT_EQ(corrupt_reason(b), "1 unexpected bytes after the checksum");
  b.resize(b.size() + 999);
  EXPECT_EQ(corrupt_reason(b), "1000 unexpected bytes after the checksum");
}

TEST(Container, EveryBitFlipIsRefused) {
  const std::vector<uint8_t> good = write_container(sample_header(), sample_payloads());
  std::vector<uint8_t> b = good;
  int magic = 0, version = 0, count = 0, header = 0, payload = 0;
  for (size_t bit = 0; bit < b.size() * 8; ++bit) {
    const size_t at = bit / 8;
    b[at] ^= static_cast<uint8_t>(1 << (bit % 8));
    const auto [kind, reason] = error_of([&] { read(b); });
    if (at < 8) {
      magic += reason == "not a Bottleneck file (bad magic)";
    } else if (at < 10) {
      // A version field hit reads as a future (or zero) version: refused either way.
      version += kind == ErrorKind::kUnsupported || reason == "format version 0 is invalid";
    } else if (at >= 40 && at < 44) {
      count += kind == ErrorKind::kCorrupt;  // an impossible count or the header checksum
    } else if (at < 80) {
      header += reason == "header checksum mismatch";
    } else {
      payload += reason == "checksum mismatch";
    }
    b[at] ^= static_cast<uint8_t>(1 << (bit % 8));
  }
  EXPECT_EQ(magic, 64);
  EXPECT_EQ(version, 16);
  EXPECT_EQ(count, 32);
  EXPECT_EQ(header, (80 - 10 - 4) * 8);
  EXPECT_EQ(payload, (1184 - 80) * 8);
  EXPECT_EQ(b, good);
}

TEST(Container, ChecksumsAreChecked) {
  std::vector<uint8_t> b = write_container(sample_header(), sample_payloads());
  b.back() ^= 1;
  EXPECT_EQ(corrupt_reason(b), "checksum mismatch");
  b.back() ^= 1;
  b[77] ^= 0x80;
  EXPECT_EQ(corrupt_reason(b), "header checksum mismatch");
  b[77] ^= 0x80;
  b[500] ^= 4;
  EXPECT_EQ(corrupt_reason(b), "checksum mismatch");
}

TEST(Container, FutureVersionsAreUnsupported) {
  std::vector<uint8_t> b = write_container(sample_header(), sample_payloads());
  b[8] = 2;
  reseal(b);
  auto [kind, reason] = error_of([&] { read(b); });
  EXPECT_EQ(kind, ErrorKind::kUnsupported);
  EXPECT_EQ(reason, "format version 2 is newer than this build reads (1)");
  // A newer writer may have changed everything after the version: nothing else is checked.
  b.resize(12);
  b[9] = 1;
  std::tie(kind, reason) = error_of([&] { read(b); });
  EXPECT_EQ(kind, ErrorKind::kUnsupported);
  EXPECT_EQ(reason, "format version 258 is newer than this build reads (1)");
  b = write_container(sample_header(), sample_payloads());
  b[8] = 0;
  reseal(b);
  EXPECT_EQ(corrupt_reason(b), "format version 0 is invalid");
}

TEST(Container, BadFieldsBehindValidChecksumsAreRefused) {
  const std::vector<std::tuple<size_t, uint32_t, int, std::string>> cases = {
      {10, 2, 1, "channels 2, not 1 or 3"},
      {11, 1, 1, "bit depth 1, not 8 or 16"},
      {12, 0, 4, "image width 0 outside 1..262144"},
      {16, 0xffffffff, 4, "image height 4294967295 outside 1..262144"},
      {20, 0x7fc00000, 4, "quality nan is not finite and >= 0"},
      {20, 0xbf800000, 4, "quality -1.000000 is not finite and >= 0"},
      {44, 0, 4, "stream 0 channels 0 outside 1..65535"},
      {64, 1u << 20, 4, "stream 1 height 1048576 outside 1..262144"},
      {56, 0xffffffff, 4, "truncated: header says 4294967395 payload bytes and a 4-byte checksum follow, 1104 bytes remain"},
      {56, 999, 4, "1 unexpected bytes after the checksum"},
  };
  for (const auto& [at, value, bytes, message] : cases) {
    std::vector<uint8_t> b = write_container(sample_header(), sample_payloads());
    for (int i = 0; i < bytes; ++i) b[at + i] = static_cast<uint8_t>(value >> (8 * i));
    reseal(b);
    EXPECT_EQ(corrupt_reason(b), message);
  }
  // The stream count is bounded before the header checksum can be found.
  for (uint32_t count : {0u, 9u, 0xffffffffu}) {
    std::vector<uint8_t> b = write_container(sample_header(), sample_payloads());
    store32(b, 40, count);
    EXPECT_EQ(corrupt_reason(b), "stream count " + std::to_string(count) + " outside 1..8 (damaged header)");
  }
}

TEST(Container, OtherFilesHaveBadMagic) {
  const std::vector<std::vector<uint8_t>> others = {
      {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13},  // PNG
      {0xff, 0xd8, 0xff, 0xe0},                                    // JPEG
      {'P', 'K', 3, 4},                                            // zip (a TorchScript export)
      {0x88},                                                      // one bit off
      {0x89, 'B', 'N', 'K', '\r', '\n', 0x1a, '\n', 1, 0},
  };
  for (const std::vector<uint8_t>& b : others) {
    EXPECT_EQ(corrupt_reason(b), "not a Bottleneck file (bad magic)");
    EXPECT_FALSE(is_container(b.data(), b.size()));
  }
  const std::vector<uint8_t> b = write_container(sample_header(), sample_payloads());
  EXPECT_TRUE(is_container(b.data(), b.size()));
  EXPECT_TRUE(is_container(b.data(), 8));
  EXPECT_FALSE(is_container(b.data(), 7));
  EXPECT_EQ(corrupt_reason(b, 7), "truncated: 7 bytes, the header alone needs at least 64");
}

TEST(Container, GarbageIsRefusedWithoutCrashing) {
  std::mt19937_64 rng(2);
  const std::vector<uint8_t> good = write_container(sample_header(), sample_payloads());
  for (int round = 0; round < 20000; ++round) {
    std::vector<uint8_t> b = good;
    for (int k = 0; k < 1 + static_cast<int>(rng() % 8); ++k) b[rng() % 80] = static_cast<uint8_t>(rng());
    if (rng() % 2) reseal(b);
    if (rng() % 4 == 0) b.resize(rng() % b.size());
    try {
      const ParsedContainer c = read(b);
      EXPECT_EQ(c.payloads.size(), c.header.streams.size());
    } catch (const Error& e) {
      EXPECT_TRUE(e.kind() == ErrorKind::kCorrupt || e.kind() == ErrorKind::kUnsupported) << e.what();
    }
  }
}

TEST(Container, ModelIds) {
  ModelId id;
  for (uint8_t i = 0; i < 16; ++i) id[i] = static_cast<uint8_t>(i * 17);
  EXPECT_EQ(model_id_hex(id), "00112233445566778899aabbccddeeff");
  const ParsedContainer c = read(write_container(sample_header(), sample_payloads()));
  EXPECT_NO_THROW(check_model_id(c, sample_header().model_id, "f.bnc"));
  const auto [kind, reason] = error_of([&] { check_model_id(c, id, "f.bnc"); });
  EXPECT_EQ(kind, ErrorKind::kInvalidData);
  EXPECT_EQ(reason, "compressed with model 000102030405060708090a0b0c0d0e0f, not with this model "
                    "(00112233445566778899aabbccddeeff)");
}

TEST(Container, Extension) {
  EXPECT_STREQ(kContainerExtension, ".bnc");
  EXPECT_TRUE(has_container_extension("photo.bnc"));
  EXPECT_TRUE(has_container_extension("dir/PHOTO.BNC"));
  EXPECT_TRUE(has_container_extension("a.b/c.d.Bnc"));
  EXPECT_FALSE(has_container_extension("photo.bnk"));
  EXPECT_FALSE(has_container_extension("bnc"));
  EXPECT_FALSE(has_container_extension(".bnc"));  // a hidden file without extension
  EXPECT_FALSE(has_container_extension("x.bnc/photo"));
  EXPECT_FALSE(has_container_extension("photo.bnc.png"));
  EXPECT_EQ(container_path_for("dir.d/photo.png"), "dir.d/photo.bnc");
  EXPECT_EQ(container_path_for("photo"), "photo.bnc");
  EXPECT_EQ(container_path_for("a/b.tar.gz"), "a/b.tar.bnc");
}

TEST(Container, CarriesRansPayloadsEndToEnd) {
  // The codec's path: values -> rANS streams -> container -> bytes -> container -> values.
  const std::vector<CdfTable> tables = {make_cdf_table({0.05, 0.2, 0.5, 0.2, 0.05}, -2),
                                        make_cdf_table({0.1, 0.8, 0.1}, -1)};
  ContainerHeader h = sample_header();
  h.streams = {{4, 6, 5}, {2, 3, 3}};
  std::mt19937_64 rng(3);
  std::vector<std::vector<int32_t>> values(2);
  std::vector<std::vector<uint8_t>> payloads;
  for (size_t s = 0; s < 2; ++s) {
    RansEncoder enc;
    const uint64_t n = uint64_t{h.streams[s].channels} * h.streams[s].height * h.streams[s].width;
    for (uint64_t i = 0; i < n; ++i) {
      values[s].push_back(static_cast<int32_t>(rng() % 9) - 4);
      enc.put(values[s].back(), tables[s]);
    }
    payloads.push_back(enc.finish());
  }
  const std::vector<uint8_t> file = write_container(h, payloads);
  const ParsedContainer c = read(file);
  for (size_t s = 0; s < 2; ++s) {
    RansDecoder dec(c.payloads[s].data(), c.payloads[s].size());
    std::vector<int32_t> back;
    for (size_t i = 0; i < values[s].size(); ++i) back.push_back(dec.get(tables[s]));
    dec.finish_check();
    EXPECT_EQ(back, values[s]);
  }
}
