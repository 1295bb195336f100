# A lua-profile variant: the money counters written at once by each step, not behind (SPEC §13.11).
import re
pattern = re.compile(rb'\n(\s*)WB, WB_NAMES = \{\}, \{\}\n')
assert pattern.search(c) and pattern.search(s)
c = pattern.sub(b'\n', c, 1)
s = pattern.sub(b'\n', s, 1)
