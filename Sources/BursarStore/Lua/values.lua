-- Optional numbers: absent (nil, false, '') is no limit; `tighter` keeps the lower limit.
local function num(x)
  if x == nil or x == false or x == '' then return nil end
  return tonumber(x)
end
local function tighter(a, b)
  if a == nil then return b end
  if b == nil then return a end
  if b < a then return b end
  return a
end
