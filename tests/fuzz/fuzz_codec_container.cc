// libFuzzer target: the codec's readers, the compressed-file container and the rANS decoder
// behind it. The first byte picks what the rest is:
//   0 a container file, parsed and, when valid, its payloads decoded with fixed tables
//   1 fields and payload bytes of a container this target writes, so that the payloads (rANS
//     garbage) reach the decoder without the fuzzer having to forge CRC32s
//   2 values to code: encoded, wrapped, parsed and decoded back, which must give them exactly
//   3 a bare rANS stream, decoded with fixed tables
//   4 serialised CDF tables, parsed and, when valid, serialised back to the same bytes
// Damaged input must throw Error and nothing else; a broken round trip traps.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "codec/cdf.h"
#include "codec/container.h"
#include "codec/rans.h"
#include "util/error.h"

using namespace bottleneck;

namespace {

// Decoding a hostile shape of 2^32 elements would take minutes per input; a few thousand
// symbols reach every path of the decoder and keep the target near 10^3 runs a second.
constexpr uint64_t kMaxSymbolsPerStream = 1 << 12;

// The kinds of table a codec has: a peaked Gaussian, a wide one, a near-certain value, a uniform
// 4096-symbol one and the smallest.
const std::vector<CdfTable>& fixed_tables() {
  static const std::vector<CdfTable> tables = [] {
    std::vector<CdfTable> t;
    for (double sigma : {0.6, 40.0}) {
      std::vector<double> pmf;
      const int r = static_cast<int>(6 * sigma) + 1;
      for (int v = -r; v <= r; ++v) pmf.push_back(std::exp(-0.5 * v * v / (sigma * sigma)) / (sigma * 2.5066282746));
      t.push_back(make_cdf_table(pmf, -r));
    }
    t.push_back(make_cdf_table({1e-6, 1 - 2e-6, 1e-6}, -1));
    t.push_back(make_cdf_table(std::vector<double>(4096, 1.0 / 4096), -2048));
    t.push_back(make_cdf_table({1}, 0));
    return t;
  }();
  return tables;
}

// Reads bytes as the fuzzer gives them, zeros once they run out.
struct Bytes {
  const uint8_t* data;
  size_t size;
  size_t pos = 0;
  uint32_t u8() { return pos < size ? data[pos++] : 0; }
  uint32_t u16() { return u8() | u8() << 8; }
  uint32_t u32() { return u16() | u16() << 16; }
  size_t left() const { return size - pos; }
};

const CdfTable& table_for(uint64_t channel) { return fixed_tables()[channel % fixed_tables().size()]; }

void decode_stream(const std::vector<uint8_t>& payload, const LatentShape& shape) {
  RansDecoder dec(payload.data(), payload.size());
  const uint64_t plane = uint64_t{shape.height} * shape.width;
  const uint64_t n = plane * shape.channels;
  for (uint64_t i = 0; i < n && i < kMaxSymbolsPerStream; ++i) dec.get(table_for(i / plane));
  if (n <= kMaxSymbolsPerStream) dec.finish_check();
}

void decode_container(const uint8_t* data, size_t size) {
  const ParsedContainer file = read_container(data, size, "fuzz.bnc");
  if (file.payloads.size() != file.header.streams.size()) __builtin_trap();
  for (size_t s = 0; s < file.payloads.size(); ++s) decode_stream(file.payloads[s], file.header.streams[s]);
}

ContainerHeader header_from(Bytes& in) {
  ContainerHeader h;
  h.width = 1 + in.u16();
  h.height = 1 + in.u16();
  h.channels = in.u8() & 1 ? 3 : 1;
  h.bit_depth = in.u8() & 1 ? 16 : 8;
  h.quality = static_cast<float>(in.u8()) / 16;
  for (uint8_t& b : h.model_id) b = static_cast<uint8_t>(in.u8());
  const uint32_t streams = 1 + in.u8() % kMaxStreams;
  for (uint32_t s = 0; s < streams; ++s) h.streams.push_back({1 + in.u8() % 4, 1 + in.u8() % 8, 1 + in.u8() % 8});
  return h;
}

void wrap_payload_bytes(Bytes& in) {
  const ContainerHeader h = header_from(in);
  std::vector<std::vector<uint8_t>> payloads;
  for (size_t s = 0; s < h.streams.size(); ++s) {
    const size_t wanted = s + 1 == h.streams.size() ? in.left() : 4 * size_t{in.u8()};
    const size_t n = std::min(wanted, in.left());
    payloads.emplace_back(in.data + in.pos, in.data + in.pos + n);
    in.pos += n;
  }
  const std::vector<uint8_t> file = write_container(h, payloads);
  decode_container(file.data(), file.size());
}

void round_trip_values(Bytes& in) {
  const ContainerHeader h = header_from(in);
  std::vector<std::vector<int32_t>> values(h.streams.size());
  std::vector<std::vector<uint8_t>> payloads;
  for (size_t s = 0; s < h.streams.size(); ++s) {
    const LatentShape& shape = h.streams[s];
    const uint64_t plane = uint64_t{shape.height} * shape.width;
    RansEncoder enc;
    for (uint64_t i = 0; i < plane * shape.channels; ++i) {
      // Mostly small values (in range), sometimes any int32 (escapes).
      const uint32_t b = in.u8();
      const int32_t v = b == 0xff ? static_cast<int32_t>(in.u32()) : static_cast<int32_t>(b % 64) - 32;
      values[s].push_back(v);
      enc.put(v, table_for(i / plane));
    }
    payloads.push_back(enc.finish());
  }
  const std::vector<uint8_t> file = write_container(h, payloads);
  const ParsedContainer back = read_container(file.data(), file.size(), "fuzz.bnc");
  for (size_t s = 0; s < h.streams.size(); ++s) {
    const uint64_t plane = uint64_t{h.streams[s].height} * h.streams[s].width;
    RansDecoder dec(back.payloads[s].data(), back.payloads[s].size());
    for (uint64_t i = 0; i < values[s].size(); ++i)
      if (dec.get(table_for(i / plane)) != values[s][i]) __builtin_trap();
    dec.finish_check();
  }
}

void decode_bare_stream(Bytes& in) {
  const LatentShape shape{1 + in.u8() % 8, 1 + in.u8() % 32, 1 + in.u8() % 32};
  const std::vector<uint8_t> payload(in.data + in.pos, in.data + in.size);
  decode_stream(payload, shape);
}

void parse_tables(const uint8_t* data, size_t size) {
  const std::vector<CdfTable> tables = parse_cdf_tables(data, size, "fuzz.tables");
  for (const CdfTable& t : tables)
    if (!cdf_table_problem(t).empty()) __builtin_trap();
  const std::vector<uint8_t> again = serialize_cdf_tables(tables);
  if (again.size() != size || std::memcmp(again.data(), data, size) != 0) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  Bytes in{data + 1, size - 1};
  try {
    switch (data[0] % 5) {
      case 0: decode_container(in.data, in.size); break;
      case 1: wrap_payload_bytes(in); break;
      case 2:
        try {
          round_trip_values(in);
        } catch (const Error&) {
          __builtin_trap();  // valid values and tables: nothing may fail
        }
        break;
      case 3: decode_bare_stream(in); break;
      case 4: parse_tables(in.data, in.size); break;
    }
  } catch (const Error&) {
  }
  return 0;
}
