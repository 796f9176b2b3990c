#include "nets/layer_plan.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "nets/arch_spec.h"
#include "nets/models.h"

namespace bottleneck {
namespace {

// The U-Net's radius in closed form, written independently of the plan: convs add one pixel of
// the resolution they read, a 2x upsampling one coarse pixel (and its conv, when bilinear, one
// fine pixel), the head one.
int unet_radius(const ArchSpec& spec) {
  const int convs = spec.convs_per_level;
  int radius = convs;
  for (int l = 1; l <= spec.depth(); ++l) radius += (1 << (l - 1)) + (convs - 1) * (1 << l);
  for (int l = spec.depth(); l >= 1; --l)
    radius += (1 << l) + (convs + (spec.upsample == Upsample::kBilinear ? 1 : 0)) * (1 << (l - 1));
  return radius + 1;
}

TEST(LayerPlan, RadiusAndMacsMatchTheShippedNetworks) {
  for (const std::string& name : {"unet-s", "unet-m", "unet-l"}) {
    for (int channels : {1, 3}) {
      ArchSpec spec = preset_arch(name, channels);
      EXPECT_EQ(make_plan(spec).receptive_radius(), unet_radius(spec)) << name;
      spec.upsample = Upsample::kBilinear;
      EXPECT_EQ(make_plan(spec).receptive_radius(), unet_radius(spec)) << name << " bilinear";
    }
  }
  // unet-l as models/README.md publishes it (from the networks before the plan): 112.7 k
  // (gray) and 113.9 k (colour) MACs per pixel, radius 52 px.
  const LayerPlan gray = make_plan(preset_arch("unet-l", 1)), colour = make_plan(preset_arch("unet-l", 3));
  EXPECT_NEAR(gray.macs_per_pixel() / 1000, 112.7, 0.05);
  EXPECT_NEAR(colour.macs_per_pixel() / 1000, 113.9, 0.05);
  EXPECT_EQ(colour.receptive_radius(), 52);
}

TEST(LayerPlan, TheNetworkIsBuiltFromThePlanLayerForLayer) {
  for (const std::string& kind : {"unet", "conv-ae"}) {
    for (const std::string& upsample : {"transposed", "bilinear"}) {
      ArchSpec spec = preset_arch(kind == "unet" ? "unet-m" : "conv-ae", 3);
      spec.upsample = parse_upsample(upsample);
      const LayerPlan plan = make_plan(spec);
      Autoencoder model = make_model(spec);
      EXPECT_DOUBLE_EQ(model->macs_per_pixel(), plan.macs_per_pixel());
      // Parameters in the plan's order, each layer a weight and a bias of the plan's shape.
      std::vector<std::string> names;
      for (const auto& p : model->named_parameters()) names.push_back(p.key());
      const auto layers = plan.layers();
      ASSERT_EQ(names.size(), 2 * layers.size()) << kind << " " << upsample;
      for (size_t i = 0; i < layers.size(); ++i) {
        const PlanStep& s = *layers[i];
        EXPECT_EQ(names[2 * i], s.name + ".weight");
        EXPECT_EQ(names[2 * i + 1], s.name + ".bias");
        const auto shape = model->named_parameters()[s.name + ".weight"].sizes().vec();
        const bool transposed = s.op == PlanStep::Op::kUp && upsample == "transposed";
        const std::vector<int64_t> expected =
            transposed ? std::vector<int64_t>{s.in, s.out, 2, 2} : std::vector<int64_t>{s.out, s.in, s.kernel, s.kernel};
        EXPECT_EQ(shape, expected) << s.name;
      }
    }
  }
  // A conv-ae reads less context than a U-Net of the same widths (one conv at full resolution,
  // one fewer per decoder level), and its plan says so.
  ArchSpec unet = preset_arch("unet-m", 1), ae = preset_arch("conv-ae", 1);
  ae.widths = unet.widths;
  ae.convs_per_level = unet.convs_per_level;
  EXPECT_LT(make_plan(ae).receptive_radius(), make_plan(unet).receptive_radius());
}

TEST(LayerPlan, CarriesTheSpecsKinds) {
  ArchSpec spec;
  spec.activation = Activation::kSilu;
  spec.head = Head::kSigmoid;
  spec.upsample = Upsample::kBilinear;
  spec.kind = ArchKind::kConvAE;
  spec.bottleneck_channels = 4;
  const LayerPlan plan = make_plan(spec);
  EXPECT_EQ(plan.activation, Activation::kSilu);
  EXPECT_EQ(plan.head_kind, Head::kSigmoid);
  EXPECT_EQ(plan.upsample, Upsample::kBilinear);
  EXPECT_EQ(plan.kind, ArchKind::kConvAE);
}

}  // namespace
}  // namespace bottleneck
