#include "loom/model/kernel_profile.hpp"

namespace loom {

const char* kernel_name(Kernel k) {
  switch (k) {
    case Kernel::kEmbedding: return "embedding";
    case Kernel::kLayerNorm: return "layernorm";
    case Kernel::kMatmulQKV: return "matmul qkv";
    case Kernel::kAttention: return "attention";
    case Kernel::kMatmulAttnProj: return "matmul attn proj";
    case Kernel::kResidual: return "residual";
    case Kernel::kMatmulFC: return "matmul fc";
    case Kernel::kGelu: return "gelu";
    case Kernel::kMatmulMLPProj: return "matmul mlp proj";
    case Kernel::kDropout: return "dropout";
    case Kernel::kLMHead: return "lm head";
    case Kernel::kSoftmaxCE: return "softmax+ce";
    case Kernel::kCount: break;
  }
  return "?";
}

}  // namespace loom
