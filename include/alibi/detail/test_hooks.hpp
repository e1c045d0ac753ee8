#pragma once
// Test-only knobs of the kernel's plan, as plain data shared by every ISA pass (Note [ABI namespace]).
// Library users never set them. They exist so tests can reach code paths that the tuning constants keep
// out of small shapes (e.g. thread teams below Tuning::kSingleThreadFlops) without huge inputs.
namespace alibi {
namespace test_hooks {

/// < 0: use Tuning::kSingleThreadFlops. Otherwise calls below this many FLOPs run on one thread.
/// Set it only while no attention call runs (it is read without synchronisation).
inline double single_thread_flops = -1.0;

/// true: calls keep the ISA's full vector width even where Plan::prefers_narrower would move them to
/// half-width vectors (Note [narrower vectors] in kernels/plan.hpp), so tests can compare the two.
inline bool full_width_only = false;

/// true: streaming decodes read keys in order even where Plan::stream_key_pairs would take a group's even
/// keys, then its odd keys (Note [page pairs] in kernels/unit_worker.hpp), so tests can compare the two.
inline bool no_key_pairs = false;

/// true (and no_key_pairs false): streaming decodes take page pairs wherever they apply, also on the AMD
/// cores where Plan::stream_key_pairs leaves them out, so every machine tests them.
inline bool key_pairs_always = false;

/// true (and full_width_only false): paged decodes over short pages move to narrower vectors wherever
/// Plan::prefers_narrower's page rule applies, also on the AMD cores where it leaves them at full width, so
/// every machine tests them.
inline bool narrower_pages_always = false;

}  // namespace test_hooks
}  // namespace alibi
