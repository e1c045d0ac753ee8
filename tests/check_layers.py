#!/usr/bin/env python3
"""Fails if an include in include/alibi runs back up a layer.

Layers, bottom to top: the vocabulary (detail/config.hpp, detail/test_hooks.hpp, types.hpp, isa/tags.hpp,
version.hpp: plain data and macros, includable from anywhere), detail/, isa/, kernels/, then the public
headers at the top level of include/alibi (alibi.hpp, attention.hpp, dispatch.hpp, ...). A header may include its own layer and
the layers below it, never one above.

Also: every header of detail/, isa/ and kernels/ outside the vocabulary is a per-target header (Note
[per-target headers] in detail/config.hpp): no #pragma once, and a guard for each of the three passes.

Usage: check_layers.py INCLUDE_DIR
"""
import pathlib
import re
import sys

VOCABULARY = {
    "alibi/detail/config.hpp", "alibi/detail/test_hooks.hpp", "alibi/types.hpp", "alibi/isa/tags.hpp",
    "alibi/version.hpp",
}
RANK = {"detail": 0, "isa": 1, "kernels": 2, "public": 3}


def layer(header):
    parts = header.split("/")
    return parts[1] if len(parts) > 2 else "public"


def main(include_dir):
    root = pathlib.Path(include_dir)
    problems = []
    headers = sorted(p.relative_to(root).as_posix() for p in (root / "alibi").rglob("*.hpp"))
    if not headers:
        return "no headers under " + include_dir
    for header in headers:
        if header in VOCABULARY:
            continue
        text = (root / header).read_text()
        if layer(header) != "public":
            guard = "ALIBI_" + re.sub(r"[^A-Z0-9]", "_", header[len("alibi/"):].upper())
            if re.search(r"^\s*#\s*pragma\s+once", text, flags=re.M):
                problems.append(f"{header}: #pragma once in a per-target header")
            for n in range(3):
                if f"ALIBI_PASS == {n} && !defined({guard}_{n})" not in text or f"#define {guard}_{n}" not in text:
                    problems.append(f"{header}: no guard {guard}_{n} for pass {n}")
        for included in re.findall(r'^\s*#\s*include\s+"(alibi/[^"]+)"', text, flags=re.M):
            if included in VOCABULARY:
                continue
            if layer(included) not in RANK:
                problems.append(f"{header} includes {included}: unknown layer")
            elif RANK[layer(included)] > RANK[layer(header)]:
                problems.append(f"{header} ({layer(header)}) includes {included} ({layer(included)}), a layer above it")
    for problem in problems:
        print("FAIL: " + problem)
    print(f"{len(headers)} headers checked, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1]))
