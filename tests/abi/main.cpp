// Links the per-ISA objects of api_user.cpp into one program and runs those the CPU supports.
#include <cstdio>

float use_api_scalar(int threads);
float use_api_avx2(int threads);
float use_api_avx512(int threads);

int main() {
  __builtin_cpu_init();
  float total = use_api_scalar(2);
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) total += use_api_avx2(2);
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx2"))
    total += use_api_avx512(2);
  std::printf("mixed-ISA program ran: %g\n", static_cast<double>(total));
  return 0;
}
