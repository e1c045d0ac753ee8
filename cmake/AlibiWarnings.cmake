# Strict warnings for the project's own targets (developer preset `dev`, issue 5 item 6).
#
# Applied with add_compile_options from the root directory, so they reach the tests, benchmarks and examples
# (which include every public header) but never the alibi::alibi interface target or a consumer's code.
# System headers (GoogleTest, Google Benchmark, Eigen) come in through imported targets and stay silent.
function(alibi_enable_strict_warnings)
  if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
    add_compile_options(
      $<$<COMPILE_LANGUAGE:CXX>:-Wall>
      $<$<COMPILE_LANGUAGE:CXX>:-Wextra>
      $<$<COMPILE_LANGUAGE:CXX>:-Wpedantic>
      $<$<COMPILE_LANGUAGE:CXX>:-Wconversion>
      $<$<COMPILE_LANGUAGE:CXX>:-Wshadow>
      $<$<COMPILE_LANGUAGE:CXX>:-Werror>)
  elseif(MSVC)
    add_compile_options(/W4 /WX)
  endif()
endfunction()
