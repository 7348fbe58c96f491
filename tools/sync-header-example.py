#!/usr/bin/env python3
"""Copy examples/zeroshot.c into the comment at the top of include/medvlm.h (the text between
"A complete zero-shot program" and "Conventions"); tests/cli/test_example.sh checks the two
agree. Lines of the example must stay under 94 columns so that the comment fits in 100."""
import pathlib
import sys

root = pathlib.Path(__file__).resolve().parent.parent
header = root / "include" / "medvlm.h"
prog = (root / "examples" / "zeroshot.c").read_text().rstrip("\n").split("\n")
long = [i + 1 for i, line in enumerate(prog) if len(line) > 93]
if long:
    sys.exit(f"examples/zeroshot.c: lines {long} are longer than 93 columns")
text = header.read_text()
start = text.index(" * A complete zero-shot program")
end = text.index(" * Conventions (the same everywhere):")
body = "".join((" *     " + line).rstrip() + "\n" for line in prog)
intro = (" * A complete zero-shot program (examples/zeroshot.c; the tests build it, run it and check\n"
         " * that this copy is the same):\n *\n")
header.write_text(text[:start] + intro + body + " *\n" + text[end:])
