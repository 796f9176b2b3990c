#!/usr/bin/env python3
"""Checks that src/ includes point down the layer plan of docs/architecture.md, and that no
header include cycle exists. Exit 1 with one line per violation.

A file may include its own folder and any folder of a lower layer; folders on one layer are
peers and may not include each other (they would no longer be separable).

    scripts/check_layers.py [SRC_DIR]
"""
import os
import re
import sys

# Lowest first. One fact in one place: docs/architecture.md describes these folders.
LAYERS = [
    ["util"],
    ["runtime"],
    ["image", "nets", "distributed"],
    ["data", "report"],
    ["formats"],
    ["inference"],
    ["train", "denoise"],
    ["codec", "anomaly", "bench"],
    ["cli"],
]
RANK = {folder: rank for rank, folders in enumerate(LAYERS) for folder in folders}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
GENERATED = ("bottleneck/",)  # configure_file outputs (version.h): below every layer


def main():
    src = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                          os.path.join(os.path.dirname(__file__), "..", "src"))
    problems = []
    graph = {}
    for dirpath, _, names in os.walk(src):
        for name in sorted(names):
            if not name.endswith((".h", ".cc")):
                continue
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, src).replace(os.sep, "/")
            if "/" not in rel:
                if name.endswith(".in"):
                    continue
                problems.append(f"{rel}: not in a layer folder")
                continue
            folder = rel.split("/")[0]
            if folder not in RANK:
                problems.append(f"{rel}: folder {folder}/ is not in the layer plan ({__file__})")
                continue
            with open(path, encoding="utf-8") as f:
                includes = INCLUDE.findall(f.read())
            graph[rel] = [i for i in includes if not i.startswith(GENERATED)]
            for inc in graph[rel]:
                target = inc.split("/")[0] if "/" in inc else None
                if target is None:
                    problems.append(f"{rel}: includes \"{inc}\" without its folder")
                elif target not in RANK:
                    problems.append(f"{rel}: includes \"{inc}\" from an unknown folder")
                elif not os.path.exists(os.path.join(src, inc)):
                    problems.append(f"{rel}: includes \"{inc}\", which does not exist")
                elif target != folder and RANK[target] >= RANK[folder]:
                    how = "a peer" if RANK[target] == RANK[folder] else "a higher layer"
                    problems.append(f"{rel}: includes \"{inc}\" from {how} ({target}/ is layer "
                                    f"{RANK[target]}, {folder}/ is layer {RANK[folder]})")
    # Header cycles (a .cc is never included, so only headers can close one).
    state = {}

    def visit(node, stack):
        state[node] = 1
        stack.append(node)
        for nxt in graph.get(node, []):
            if not nxt.endswith(".h") or nxt not in graph:
                continue
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                problems.append("include cycle: " + " -> ".join(cycle))
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node.endswith(".h") and node not in state:
            visit(node, [])
    for p in problems:
        print(p)
    print(f"check_layers: {len(graph)} files, {len(problems)} problems", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
