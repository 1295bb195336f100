-- The organization's key prefix, `br:{o<org>}:` (Keyspace.org): every key a step touches begins
-- with it, so they share one Redis Cluster slot.
local P = ARGV[1]
