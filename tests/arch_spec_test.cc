#include "nets/arch_spec.h"

#include <functional>
#include <string>

#include <gtest/gtest.h>

#include "util/error.h"

namespace bottleneck {
namespace {

ArchSpec valid_spec() {
  ArchSpec spec;
  spec.widths = {8, 16};
  return spec;
}

// Expects validate() to throw UsageError whose message contains every one of `needles`.
void expect_invalid(const std::function<void(ArchSpec&)>& mutate,
                    std::initializer_list<const char*> needles) {
  ArchSpec spec = valid_spec();
  mutate(spec);
  try {
    validate(spec);
    ADD_FAILURE() << "validate() accepted the spec; expected an error mentioning "
                  << *needles.begin();
  } catch (const UsageError& e) {
    const std::string what = e.what();
    for (const char* n : needles) EXPECT_NE(what.find(n), std::string::npos) << what;
  }
}

// Expects arch_spec_from_json() to throw an Error (not a UsageError) containing `needle`.
void expect_bad_json(const std::string& text, const std::string& needle) {
  try {
    arch_spec_from_json(text);
    ADD_FAILURE() << "accepted " << text;
  } catch (const UsageError& e) {
    ADD_FAILURE() << "a bad spec in JSON should be an Error, not a UsageError: " << e.what();
  } catch (const Error& e) {
    EXPECT_EQ(e.path(), "arch spec");
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(ArchSpecTest, DefaultsAreValid) {
  EXPECT_NO_THROW(validate(ArchSpec()));
  EXPECT_EQ(ArchSpec().depth(), 2);
  EXPECT_EQ(ArchSpec().size_multiple(), 4);
}

TEST(ArchSpecTest, ValidationNamesFieldAndValue) {
  // Fields are checked in declaration order, so each case trips only the field it changes.
  expect_invalid([](ArchSpec& s) { s.in_channels = 2; }, {"in_channels", "2"});
  expect_invalid([](ArchSpec& s) { s.in_channels = 0; }, {"in_channels", "0"});
  expect_invalid([](ArchSpec& s) { s.out_channels = 4; }, {"out_channels", "4"});
  expect_invalid([](ArchSpec& s) { s.widths = {}; }, {"widths", "empty"});
  expect_invalid([](ArchSpec& s) { s.widths = {8, 0}; }, {"widths[1]", "0"});
  expect_invalid([](ArchSpec& s) { s.widths = {-3}; }, {"widths[0]", "-3"});
  expect_invalid([](ArchSpec& s) { s.widths = {1, 1, 1, 1, 1, 1, 1, 1}; }, {"depth", "7"});
  expect_invalid([](ArchSpec& s) { s.convs_per_level = 0; }, {"convs_per_level", "0"});
  expect_invalid([](ArchSpec& s) { s.bottleneck_channels = -1; }, {"bottleneck_channels", "-1"});
  expect_invalid(
      [](ArchSpec& s) {
        s.kind = ArchKind::kConvAE;
        s.head = Head::kSigmoid;
      },
      {"bottleneck_channels", "conv-ae"});
  expect_invalid(
      [](ArchSpec& s) {
        s.kind = ArchKind::kConvAE;
        s.bottleneck_channels = 4;
      },
      {"residual", "conv-ae"});
  expect_invalid([](ArchSpec& s) { s.out_channels = 3; }, {"residual", "out_channels 3"});
  // A dense code: conv-ae only, with its one input size, and within the weight ceiling.
  auto dense_ae = [](ArchSpec& s) {
    s.kind = ArchKind::kConvAE;
    s.head = Head::kSigmoid;
    s.latent = 8;
    s.input_size = 28;
  };
  EXPECT_NO_THROW({
    ArchSpec s = valid_spec();
    dense_ae(s);
    validate(s);  // no bottleneck_channels needed: the dense layer is the bottleneck
  });
  expect_invalid([](ArchSpec& s) { s.latent = 4; s.input_size = 28; }, {"latent", "conv-ae", "unet"});
  expect_invalid([&](ArchSpec& s) { dense_ae(s); s.latent = -2; }, {"latent", "-2"});
  expect_invalid([&](ArchSpec& s) { dense_ae(s); s.input_size = 0; }, {"input_size", "0"});
  expect_invalid([&](ArchSpec& s) { dense_ae(s); s.input_size = 4096; s.latent = 4096; }, {"weights", "shrink"});
  expect_invalid([](ArchSpec& s) { s.input_size = 28; }, {"input_size", "only for a dense latent"});
  expect_invalid([](ArchSpec& s) { s.head = static_cast<Head>(7); }, {"unknown value"});
}

// The spellings are the only way in from text (JSON, CLI), so they name the field and the value.
TEST(ArchSpecTest, ParsingNamesFieldAndValue) {
  const auto expect_refused = [](const std::function<void()>& parse,
                                 std::initializer_list<const char*> needles) {
    try {
      parse();
      ADD_FAILURE() << "accepted; expected an error mentioning " << *needles.begin();
    } catch (const UsageError& e) {
      const std::string what = e.what();
      for (const char* n : needles) EXPECT_NE(what.find(n), std::string::npos) << what;
    }
  };
  expect_refused([] { parse_arch_kind("vae"); }, {"kind", "\"vae\"", "\"conv-ae\""});
  expect_refused([] { parse_activation("tanh"); }, {"activation", "\"tanh\"", "\"silu\""});
  expect_refused([] { parse_head("softmax"); }, {"head", "\"softmax\"", "\"linear\""});
  expect_refused([] { parse_upsample("nearest"); }, {"upsample", "\"nearest\"", "\"bilinear\""});
  for (ArchKind k : {ArchKind::kUNet, ArchKind::kConvAE}) EXPECT_EQ(parse_arch_kind(name_of(k)), k);
  for (Activation a : {Activation::kRelu, Activation::kLeakyRelu, Activation::kSilu})
    EXPECT_EQ(parse_activation(name_of(a)), a);
  for (Head h : {Head::kResidual, Head::kSigmoid, Head::kLinear}) EXPECT_EQ(parse_head(name_of(h)), h);
  for (Upsample u : {Upsample::kTransposed, Upsample::kBilinear}) EXPECT_EQ(parse_upsample(name_of(u)), u);
  EXPECT_STREQ(name_of(ArchKind::kConvAE), "conv-ae");
  EXPECT_STREQ(name_of(Activation::kLeakyRelu), "leaky_relu");
}

TEST(ArchSpecTest, ValidationAcceptsEdgeCases) {
  ArchSpec spec = valid_spec();
  spec.widths = {1, 1, 1, 1, 1, 1, 1};  // depth 6, the maximum
  EXPECT_NO_THROW(validate(spec));
  spec.widths = {5};  // depth 0
  EXPECT_NO_THROW(validate(spec));
  spec.head = Head::kLinear;
  spec.in_channels = 1;
  spec.out_channels = 3;  // non-residual heads may change the channel count
  EXPECT_NO_THROW(validate(spec));
}

TEST(ArchSpecTest, JsonRoundTripKeepsEveryField) {
  ArchSpec spec;
  spec.kind = ArchKind::kConvAE;
  spec.in_channels = 3;
  spec.out_channels = 1;
  spec.widths = {7, 9, 11, 13};
  spec.convs_per_level = 3;
  spec.bottleneck_channels = 5;
  spec.activation = Activation::kSilu;
  spec.head = Head::kLinear;
  spec.upsample = Upsample::kBilinear;
  const std::string text = to_json(spec);
  EXPECT_NE(text.find("\"depth\":3"), std::string::npos) << text;
  const ArchSpec back = arch_spec_from_json(text);
  EXPECT_EQ(back.kind, ArchKind::kConvAE);
  EXPECT_EQ(back.in_channels, 3);
  EXPECT_EQ(back.out_channels, 1);
  EXPECT_EQ(back.widths, (std::vector<int>{7, 9, 11, 13}));
  EXPECT_EQ(back.convs_per_level, 3);
  EXPECT_EQ(back.bottleneck_channels, 5);
  EXPECT_EQ(back.activation, Activation::kSilu);
  EXPECT_EQ(back.head, Head::kLinear);
  EXPECT_EQ(back.upsample, Upsample::kBilinear);
  EXPECT_EQ(to_json(back), text);

  // The dense fields are written only when set, so other networks' files keep their bytes.
  EXPECT_EQ(text.find("latent"), std::string::npos) << text;
  spec.latent = 12;
  spec.input_size = 30;
  const ArchSpec dense = arch_spec_from_json(to_json(spec));
  EXPECT_EQ(dense.latent, 12);
  EXPECT_EQ(dense.input_size, 30);
  EXPECT_EQ(dense.code_grid(), 4);  // 30 padded to 32 = 4 x 2^3
  EXPECT_EQ(to_json(dense), to_json(spec));
}

TEST(ArchSpecTest, JsonUsesFieldNamesInDeclarationOrder) {
  EXPECT_EQ(to_json(ArchSpec()),
            "{\"kind\":\"unet\",\"in_channels\":1,\"out_channels\":1,\"widths\":[32,64,128],"
            "\"convs_per_level\":2,\"bottleneck_channels\":0,\"activation\":\"relu\","
            "\"head\":\"residual\",\"upsample\":\"transposed\",\"depth\":2}");
}

TEST(ArchSpecTest, JsonMissingFieldsTakeDefaults) {
  const ArchSpec spec = arch_spec_from_json("{\"widths\": [4, 8], \"activation\": \"leaky_relu\"}");
  EXPECT_EQ(spec.kind, ArchKind::kUNet);
  EXPECT_EQ(spec.in_channels, 1);
  EXPECT_EQ(spec.widths, (std::vector<int>{4, 8}));
  EXPECT_EQ(spec.convs_per_level, 2);
  EXPECT_EQ(spec.activation, Activation::kLeakyRelu);
  EXPECT_EQ(spec.head, Head::kResidual);
  EXPECT_EQ(arch_spec_from_json("{}").widths, ArchSpec().widths);
}

TEST(ArchSpecTest, JsonErrors) {
  expect_bad_json("{\"kind\": \"unet\",", "malformed JSON");
  expect_bad_json("", "malformed JSON");
  expect_bad_json("[1, 2]", "JSON object");
  expect_bad_json("{\"widht\": [4]}", "unknown key \"widht\"");
  expect_bad_json("{\"widths\": [4, 8], \"depth\": 2}", "depth 2 does not match");
  expect_bad_json("{\"in_channels\": \"1\"}", "in_channels must be an integer");
  expect_bad_json("{\"in_channels\": 1.5}", "in_channels must be an integer");
  expect_bad_json("{\"in_channels\": 99999999999}", "in_channels is out of range");
  expect_bad_json("{\"widths\": 8}", "widths must be an array");
  expect_bad_json("{\"widths\": [8, \"x\"]}", "widths[1] must be an integer");
  expect_bad_json("{\"kind\": 3}", "kind must be a string");
  // Field validation failures surface as Error too, with the same message as validate().
  expect_bad_json("{\"activation\": \"gelu\"}", "activation must be one of");
  expect_bad_json("{\"widths\": []}", "widths must not be empty");
}

TEST(ArchSpecTest, PresetsAreValidAndSetChannels) {
  const std::vector<std::string> names = preset_arch_names();
  ASSERT_EQ(names, (std::vector<std::string>{"unet-s", "unet-m", "unet-l", "conv-ae"}));
  for (const std::string& name : names) {
    for (int channels : {1, 3}) {
      const ArchSpec spec = preset_arch(name, channels);
      EXPECT_NO_THROW(validate(spec)) << name;
      EXPECT_EQ(spec.in_channels, channels);
      EXPECT_EQ(spec.out_channels, channels);
      EXPECT_EQ(arch_spec_from_json(to_json(spec)).widths, spec.widths);
    }
  }
  EXPECT_EQ(preset_arch("unet-s", 1).widths, (std::vector<int>{16, 32, 64, 128}));
  EXPECT_EQ(preset_arch("unet-m", 1).widths, (std::vector<int>{32, 64, 128}));
  EXPECT_EQ(preset_arch("unet-l", 1).widths, (std::vector<int>{32, 64, 128, 256}));
  EXPECT_EQ(preset_arch("unet-l", 1).head, Head::kResidual);
  const ArchSpec ae = preset_arch("conv-ae", 3);
  EXPECT_EQ(ae.kind, ArchKind::kConvAE);
  EXPECT_EQ(ae.widths, (std::vector<int>{32, 64, 128}));
  EXPECT_EQ(ae.bottleneck_channels, 16);
  EXPECT_EQ(ae.head, Head::kSigmoid);
}

TEST(ArchSpecTest, UnknownPresetListsKnownNames) {
  try {
    preset_arch("unet-xl", 1);
    FAIL() << "accepted an unknown preset";
  } catch (const UsageError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("unet-xl"), std::string::npos) << what;
    EXPECT_NE(what.find("unet-s, unet-m, unet-l, conv-ae"), std::string::npos) << what;
  }
  EXPECT_THROW(preset_arch("unet-s", 2), UsageError);
}

}  // namespace
}  // namespace bottleneck
