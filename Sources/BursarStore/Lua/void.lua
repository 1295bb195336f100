-- VOID: gives back an attempt whose client was told it was refused (SPEC §13.7). KEYS[1] = the
-- reservation (it names the slot). ARGV: prefix, sequence, fence TTL ms. Reply: 1 if an
-- admission was given back, 0 if there was none (a fence now stands, or it was settled,
-- released or voided before).
start_call(ARGV)
return void_attempt(ARGV[2], 'void', tonumber(ARGV[3]))
