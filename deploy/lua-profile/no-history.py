# A lua-profile variant: the usage history's writes, reads and names taken out of both scripts
# (its functions return at once, the CHECK's MGET reads no record, a SETTLE finds none).
def stub(src, fn, body):
    head = b'local function ' + fn + b'('
    assert head in src, fn
    return src.replace(head, b'local function ' + fn + b'(...) ' + body + b' end\nlocal function ' + fn + b'_unused(', 1)
for fn in (b'history_admit', b'history_denied', b'history_finish'):
    c, s = stub(c, fn, b'do return end'), stub(s, fn, b'do return end')
s = stub(s, b'history_of', b'do return nil end')
assert b', bkk, bkp, hrec, hidx)\n' in c
c = c.replace(b', bkk, bkp, hrec, hidx)\n', b', bkk, bkp)\n')
c = c.replace(b'local hrec, hidx = history_names(hday, kid, model)', b'local hrec, hidx = nil, nil')
c = c.replace(b'local hday = history_day(now_us)', b'local hday = nil')
