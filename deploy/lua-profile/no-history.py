# A lua-profile variant: the usage history's writes, reads and names taken out of both scripts
# (its functions return at once, the CHECK's MGET reads no record, a SETTLE finds none).
def stub(src, fn, body):
    head = b'local function ' + fn + b'('
    assert head in src, fn
    return src.replace(head, b'local function ' + fn + b'(...) ' + body + b' end\nlocal function ' + fn + b'_unused(', 1)
for fn in (b'history_admit', b'history_denied', b'history_finish'):
    c, s = stub(c, fn, b'do return end'), stub(s, fn, b'do return end')
s = stub(s, b'history_of', b'do return nil end')
# The CHECK's MGET reads no record (its slot, 4, reads the credits again) and no index.
for read in (b'names = {kwkey, pwkey, CREDITS, hrec}\n', b"c = rcall('MGET', kwkey, pwkey, CREDITS, hrec)\n"):
    assert read in c, read
    c = c.replace(read, read.replace(b'hrec}', b'CREDITS}').replace(b'hrec)', b'CREDITS)'))
for old, new in ((b'local hday, hidx = history_today()', b'local hday, hidx = nil, nil'),
                 (b'local hrec = history_record(hday, kid, model)', b'local hrec = nil'),
                 (b"  if not c[4] then history_read_new(hrec, hidx) end\n", b'')):
    assert old in c, old
    c = c.replace(old, new)
