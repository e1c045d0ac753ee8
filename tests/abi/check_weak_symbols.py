#!/usr/bin/env python3
"""Fails if object files built with different ISA flags share a weak symbol whose code differs.

Usage: check_weak_symbols.py OBJECT...

The linker keeps one copy of a weak (COMDAT) symbol for the whole program, so if an AVX-512 object and an
AVX2 object both define one, the AVX2 code may end up calling the AVX-512 body. Symbols inside alibi's
per-ISA namespaces (alibi::v0_<level>..., also as template arguments) are distinct by construction and
skipped; every other weak function defined by more than one object must disassemble identically.
"""
import re
import subprocess
import sys
from collections import defaultdict

ISA_NAMESPACE = re.compile(r"5alibi(?:3isa)?\d+v0_")


def weak_symbols(obj):
    listing = subprocess.run(["nm", "--defined-only", "-P", obj], check=True, capture_output=True, text=True).stdout
    symbols = set()
    for line in listing.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[1] in ("W", "V", "u"):
            symbols.add((fields[0], fields[1]))
    return symbols


def function_bodies(obj):
    """Disassembly per symbol, addresses and raw bytes stripped (COMDAT sections start at 0)."""
    text = subprocess.run(["objdump", "-d", "--no-show-raw-insn", obj], check=True, capture_output=True,
                          text=True).stdout
    bodies, current = {}, None
    for line in text.splitlines():
        header = re.match(r"^[0-9a-f]+ <(.+)>:$", line)
        if header:
            current = header.group(1)
            bodies[current] = []
        elif current is not None and re.match(r"^\s+[0-9a-f]+:\t", line):
            bodies[current].append(re.sub(r"^\s+[0-9a-f]+:\t", "", line).rstrip())
    return bodies


def main(objects):
    owners = defaultdict(list)
    for obj in objects:
        for name, kind in weak_symbols(obj):
            owners[(name, kind)].append(obj)
    bodies = {obj: function_bodies(obj) for obj in objects}
    shared = [(name, kind, objs) for (name, kind), objs in owners.items() if len(objs) > 1]
    checked, problems = 0, []
    for name, kind, objs in sorted(shared):
        if ISA_NAMESPACE.search(name):
            continue
        if kind == "V":  # data: vtables, typeinfo, guard variables hold no instructions
            continue
        checked += 1
        versions = {obj: bodies[obj].get(name) for obj in objs}
        distinct = {tuple(b) if b is not None else None for b in versions.values()}
        if len(distinct) > 1:
            demangled = subprocess.run(["c++filt", name], capture_output=True, text=True).stdout.strip()
            problems.append(f"{demangled}\n    defined differently in: " + ", ".join(objs))
    print(f"{len(shared)} weak symbols shared by several objects, {checked} outside alibi's ISA namespaces compared")
    if problems:
        print("FAIL: weak symbols whose code depends on the ISA flags are shared between objects:")
        for problem in problems:
            print("  " + problem)
        return 1
    print("ok: every shared weak symbol outside the ISA namespaces has identical code in every object")
    return 0


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1:]))
