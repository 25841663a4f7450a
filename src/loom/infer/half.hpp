#pragma once
// IEEE 754 binary16 <-> binary32, round to nearest even (as F16C's vcvtps2ph with mode 0 and
// numpy's float16), subnormals, infinities and NaN included.
#include <cstdint>

namespace loom::infer {

uint16_t float_to_half(float x);
float half_to_float(uint16_t h);

}  // namespace loom::infer
