-- The organization's key prefix, `br:{o<org>}:` (Keyspace.org): every key a step touches begins
-- with it, so they share one Redis Cluster slot.
-- Set by each call (`start_call` in prelude.lua; compile.lua sets it itself): a library's
-- functions are defined once, when it is loaded, and read it as an upvalue.
local P
-- The rate buckets' pairs a batch call writes behind (prelude.lua), or nil.
local PAIRS
-- Lua's own libraries and functions, and `redis.call` (`rcall`) and `redis.pcall` (`rpcall`), as
-- upvalues that `bind_lua` binds when a call begins (`start_call`; compile.lua): in Redis's Lua
-- each use of a global is a lookup in the globals table (`redis.call` two), on every step; an
-- upvalue is an index. A library's top level cannot bind them: at FUNCTION LOAD only `redis` is
-- in scope, and not the `redis` its calls see. Every file after this one reads them so.
local function lua_globals()
  return math, string, table, tonumber, unpack, pcall, type, redis.call, redis.pcall, struct
end
local math, string, table, tonumber, unpack, pcall, type, rcall, rpcall, struct
local function bind_lua()
  math, string, table, tonumber, unpack, pcall, type, rcall, rpcall, struct = lua_globals()
end
