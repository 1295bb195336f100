# A lua-profile variant: budget alerts never planned (no crossing is looked for).
head = b'local function plan_alerts('
assert head in c and head in s
c = c.replace(head, b'local function plan_alerts(p) return p end\nlocal function plan_alerts_unused(', 1)
s = s.replace(head, b'local function plan_alerts(p) return p end\nlocal function plan_alerts_unused(', 1)
