-- A call of one request: its step, with the call's KEYS and ARGV.
local function main(KEYS, ARGV)
  start_call(ARGV)
  return step(KEYS[1], ARGV, 0, #ARGV)
end
