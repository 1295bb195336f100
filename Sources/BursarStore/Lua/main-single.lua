-- A script of one request: its step, with the script call's KEYS and ARGV.
return step(KEYS, ARGV)
