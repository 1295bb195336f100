-- One CHECK per call: its admission is marked undelivered at once.
local function mark_undelivered(seq) rcall('SADD', P .. NAME.undelivered, seq) end
