#pragma once
// The attention kernels compiled into a reliability test binary, callable from TUs built without ISA flags.
//
// Each ISA's entry point lives in its own TU compiled with that ISA's flags (kernels_scalar.cpp without
// any, kernels_avx2.cpp with -mavx2 -mfma) and takes a `Call` (call.hpp). Tests loop or parameterise over
// compiled_kernels() and skip a kernel the CPU cannot run.
#include <string>
#include <vector>

#include "call.hpp"

namespace alibi_reliability {

struct Kernel {
  const char* name;                // the ISA tag's name: "scalar", "avx2"
  bool (*cpu_supports)();          // this CPU can run it
  void (*attention)(const Call&);  // alibi::attention<Isa>; throws what it throws
};

// Every kernel this binary was built with, scalar first.
std::vector<Kernel> compiled_kernels();

// alibi::key_norms(call.k, call.shape, out).
void key_norms(const Call& call, float* out);

}  // namespace alibi_reliability
