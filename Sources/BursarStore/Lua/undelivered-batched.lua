-- CHECKs batched in one call: the admissions' undelivered marks are added to the organization's
-- set by one SADD after the last step (nothing can read the set in between: the call is one
-- atomic step).
local UD = {}
local function begin_batch() UD = {} end
local function mark_undelivered(seq) UD[#UD + 1] = seq end
local function after_batch()
  if #UD > 0 then rcall('SADD', P .. NAME.undelivered, unpack(UD)) end
end
