-- The organization's key prefix, `br:{o<org>}:` (Keyspace.org): every key a step touches begins
-- with it, so they share one Redis Cluster slot.
-- Set by each call (`start_call` in prelude.lua; compile.lua sets it itself): a library's
-- functions are defined once, when it is loaded, and read it as an upvalue.
local P
