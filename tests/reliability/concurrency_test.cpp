// Concurrency (issue 5, item 3): many threads calling alibi::attention at once, on shared inputs and their
// own outputs, get bitwise the results of serial calls; inside each call num_threads 1, 2 and 0 (all
// hardware threads) give the same bits. Built a second time with -fsanitize=thread (no -fopenmp: the
// library then uses std::thread, which ThreadSanitizer sees; libgomp is not instrumented).
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "support.hpp"

namespace alibi_reliability {
namespace {

class Concurrency : public KernelTest {};
ALIBI_INSTANTIATE_FOR_KERNELS(Concurrency);

constexpr int kCallerThreads = 8;

// Problems of different kinds; most are large enough (>= 4e6 flops) that num_threads 2 really starts a
// second thread inside the call.
std::vector<Problem> make_jobs() {
  std::vector<Problem> jobs;
  auto add = [&](ShapeSpec s, std::uint32_t seed, float skip_tolerance = 0x1p-24f) {
    jobs.push_back(make_problem(s, seed));
    jobs.back().call.options.skip_tolerance = skip_tolerance;
  };
  ShapeSpec s;
  s.q_len = s.kv_len = 128, s.num_heads = s.num_kv_heads = 4, s.head_dim = 32, s.num_threads = 2;
  add(s, 11);  // causal multi-head
  s = {};
  s.q_len = s.kv_len = 96, s.num_heads = 8, s.num_kv_heads = 2, s.head_dim = 16, s.mask = Mask::bidirectional,
  s.num_threads = 2;
  add(s, 12);  // bidirectional grouped-query
  s = {};
  s.q_len = 1, s.kv_len = 9000, s.num_heads = 8, s.num_kv_heads = 2, s.head_dim = 32, s.num_threads = 2;
  add(s, 13, 0.0f);  // decode, no skipping: split-K with a shared partial buffer per call
  s = {};
  s.q_len = s.kv_len = 200, s.num_heads = s.num_kv_heads = 2, s.head_dim = 64, s.window = 16;
  add(s, 14);  // sliding window, calling thread only
  s = {};
  s.q_len = s.kv_len = 256, s.num_heads = 8, s.num_kv_heads = 8, s.head_dim = 16, s.num_threads = 2;
  add(s, 15);  // block skipping with caller-kept key norm bounds (set below)
  s = {};
  s.batch = 2, s.q_len = 64, s.kv_len = 80, s.num_heads = s.num_kv_heads = 3, s.head_dim = 24,
  s.mask = Mask::bidirectional, s.window = 5, s.q_pos0 = 10, s.num_threads = 2;
  add(s, 16);
  s = {};
  s.q_len = 1, s.kv_len = 33, s.num_heads = 3, s.num_kv_heads = 1, s.head_dim = 7, s.num_threads = 2;
  add(s, 17);  // tiny: runs on the calling thread whatever num_threads says
  s = {};
  s.q_len = s.kv_len = 128, s.num_heads = s.num_kv_heads = 4, s.head_dim = 32, s.num_threads = 0;
  add(s, 18);  // all hardware threads
  Problem& skipping = jobs[4];
  skipping.norms.resize(static_cast<std::size_t>(skipping.call.shape.batch * skipping.call.shape.kv_len *
                                                 skipping.call.shape.num_kv_heads));
  key_norms(skipping.call, skipping.norms.data());
  skipping.call.options.key_norms = skipping.norms.data();
  return jobs;
}

// Runs `call` into a fresh buffer and returns it.
std::vector<float> run_into_new_buffer(const Kernel& kernel, Call call) {
  std::vector<float> out(static_cast<std::size_t>(q_elements(call)), -1.0f);
  call.out = out.data();
  kernel.attention(call);
  return out;
}

TEST_P(Concurrency, ManyCallersMatchSerialCallsBitwise) {
  ALIBI_SKIP_UNLESS_CPU();
  const Kernel kernel = GetParam();
  std::vector<Problem> jobs = make_jobs();
  std::vector<std::vector<float>> serial;
  for (Problem& job : jobs) {
    kernel.attention(job.call);
    serial.push_back(job.output());
    EXPECT_EQ(check_output(job.call, job.call.out), "") << describe(job.call);
    // The documented guarantee inside one call: the same bits for every num_threads.
    for (int threads : {1, 2, 0}) {
      Call call = job.call;
      call.options.num_threads = threads;
      EXPECT_TRUE(bitwise_equal(run_into_new_buffer(kernel, call).data(), serial.back().data(), job.q_count()))
          << "num_threads " << threads << " vs " << job.call.options.num_threads << ": " << describe(job.call);
    }
  }

  const int rounds = quick_mode() ? 2 : 6;
  std::atomic<int> mismatches{0}, failures{0};
  for (int round = 0; round < rounds; ++round) {
    std::vector<std::thread> callers;
    std::atomic<int> ready{0};
    for (int t = 0; t < kCallerThreads; ++t) {
      callers.emplace_back([&, t] {
        const std::size_t index = static_cast<std::size_t>(t + round) % jobs.size();
        ready.fetch_add(1);
        while (ready.load() < kCallerThreads) std::this_thread::yield();  // start together
        try {
          const std::vector<float> out = run_into_new_buffer(kernel, jobs[index].call);
          if (!bitwise_equal(out.data(), serial[index].data(), jobs[index].q_count())) mismatches.fetch_add(1);
        } catch (...) {
          failures.fetch_add(1);
        }
      });
    }
    for (std::thread& caller : callers) caller.join();
  }
  EXPECT_EQ(mismatches.load(), 0) << "concurrent calls differ from serial ones";
  EXPECT_EQ(failures.load(), 0) << "concurrent calls threw";
}

// Rejections and valid calls interleaved across threads: each rejected call throws and leaves its own
// output untouched; the valid ones are unaffected.
TEST_P(Concurrency, RejectedCallsInterleavedWithValidOnes) {
  ALIBI_SKIP_UNLESS_CPU();
  const Kernel kernel = GetParam();
  std::vector<Problem> jobs = make_jobs();
  std::vector<std::vector<float>> serial;
  for (Problem& job : jobs) serial.push_back(run_into_new_buffer(kernel, job.call));

  std::atomic<int> problems{0};
  std::vector<std::thread> callers;
  for (int t = 0; t < kCallerThreads; ++t) {
    callers.emplace_back([&, t] {
      const std::size_t index = static_cast<std::size_t>(t) % jobs.size();
      for (int repeat = 0; repeat < (quick_mode() ? 2 : 4); ++repeat) {
        Call bad = jobs[index].call;
        std::vector<float> out(static_cast<std::size_t>(q_elements(bad)), 5.0f);
        bad.out = out.data();
        bad.shape.num_kv_heads = bad.shape.num_heads + 1;  // does not divide num_heads
        try {
          kernel.attention(bad);
          problems.fetch_add(1);
        } catch (const std::invalid_argument&) {
        }
        for (float x : out)
          if (x != 5.0f) {
            problems.fetch_add(1);
            break;
          }
        const std::vector<float> good = run_into_new_buffer(kernel, jobs[index].call);
        if (!bitwise_equal(good.data(), serial[index].data(), jobs[index].q_count())) problems.fetch_add(1);
      }
    });
  }
  for (std::thread& caller : callers) caller.join();
  EXPECT_EQ(problems.load(), 0);
}

}  // namespace
}  // namespace alibi_reliability
