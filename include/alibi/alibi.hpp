#pragma once
// alibi: header-only CPU attention kernels with ALiBi (Press, Smith & Lewis, ICLR 2022).
// The umbrella header: slopes, dense bias, fused attention, ragged and paged attention, 16-bit conversions. Eigen
// interop is opt-in: alibi/eigen.hpp.
#include "alibi/attention.hpp"
#include "alibi/backward.hpp"
#include "alibi/bias.hpp"
#include "alibi/convert.hpp"
#include "alibi/isa/tags.hpp"
#include "alibi/serving.hpp"
#include "alibi/slopes.hpp"
#include "alibi/version.hpp"
