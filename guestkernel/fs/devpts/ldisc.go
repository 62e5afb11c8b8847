package devpts

import "golang.org/x/sys/unix"

// Queue sizes. Linux's n_tty read buffer is N_TTY_BUF_SIZE (4096) and a
// canonical line holds at most 4095 bytes plus its end; the master's side
// gets the same bound, so a slave writing to a master nobody reads blocks
// after 4 KiB.
const (
	bufSize = 4096
	outSize = 4096
)

// inputQueue is what the slave reads: n_tty's read_buf with its
// read_flags (line ends) and three positions that only grow (indexes are
// taken modulo bufSize): tail is the next byte to read, canon the end of
// the last complete line, head the end of the input.
type inputQueue struct {
	buf               [bufSize]byte
	delim             [bufSize / 64]uint64
	tail, canon, head uint64
}

func (q *inputQueue) at(i uint64) byte { return q.buf[i%bufSize] }

func (q *inputQueue) isDelim(i uint64) bool {
	i %= bufSize
	return q.delim[i/64]&(1<<(i%64)) != 0
}

func (q *inputQueue) setDelim(i uint64, on bool) {
	i %= bufSize
	if on {
		q.delim[i/64] |= 1 << (i % 64)
	} else {
		q.delim[i/64] &^= 1 << (i % 64)
	}
}

func (q *inputQueue) len() int { return int(q.head - q.tail) }

// put appends c; a full queue drops it (callers check room first, but
// PARMRK doubling may need one more byte than was checked).
func (q *inputQueue) put(c byte) {
	if q.len() >= bufSize {
		return
	}
	q.setDelim(q.head, false)
	q.buf[q.head%bufSize] = c
	q.head++
}

func (q *inputQueue) reset() {
	q.tail, q.canon, q.head = 0, 0, 0
	clear(q.delim[:])
}

// ring is the master's read queue: bytes the slave wrote (after output
// processing) and echoes.
type ring struct {
	buf     [outSize]byte
	head, n int
}

func (r *ring) free() int { return outSize - r.n }

func (r *ring) put(c byte) {
	r.buf[(r.head+r.n)%outSize] = c
	r.n++
}

// take copies up to max bytes into consume's buffers and drops them.
func (r *ring) take(dst *scatter, max int) int {
	done := 0
	for r.n > 0 && done < max && !dst.full() {
		chunk := min(r.n, outSize-r.head, max-done)
		c := dst.copy(r.buf[r.head : r.head+chunk])
		r.head = (r.head + c) % outSize
		r.n -= c
		done += c
	}
	if r.n == 0 {
		r.head = 0
	}
	return done
}

// scatter fills a list of buffers in order.
type scatter struct{ bufs [][]byte }

func (s *scatter) full() bool {
	for len(s.bufs) > 0 && len(s.bufs[0]) == 0 {
		s.bufs = s.bufs[1:]
	}
	return len(s.bufs) == 0
}

func (s *scatter) copy(b []byte) int {
	n := 0
	for len(b) > 0 && !s.full() {
		c := copy(s.bufs[0], b)
		s.bufs[0] = s.bufs[0][c:]
		b, n = b[c:], n+c
	}
	return n
}

func (s *scatter) put(c byte) {
	if !s.full() {
		s.bufs[0][0] = c
		s.bufs[0] = s.bufs[0][1:]
	}
}

// ldisc is the N_TTY line discipline of one pty pair: the slave's
// termios, the input the master writes (processed by c_iflag and c_lflag
// into the slave's read queue, with echoes to the master) and the output
// the slave writes (processed by c_oflag into the master's read queue).
// It follows Linux's n_tty.c closely. Its owner (the Terminal) locks it.
type ldisc struct {
	termios Termios
	in      inputQueue
	out     ring

	// special is n_tty's char_map: the characters that need more than
	// being queued and echoed under the current termios.
	special [4]uint64
	icanon  bool

	lnext   bool // the next character is taken literally (VLNEXT)
	erasing bool // inside a \...\ ECHOPRT erase

	column      int // the output column, for tabs and erasing them
	canonColumn int // the column where the current line started

	stopped    bool // output stopped by VSTOP (IXON)
	tcoStopped bool // output stopped by TCXONC TCOOFF

	// sigs are the signals input raised (bit n for signal n), for the
	// Terminal to send once it no longer holds its lock.
	sigs uint64
}

func (l *ldisc) iflag(f uint32) bool { return l.termios.Iflag&f != 0 }
func (l *ldisc) oflag(f uint32) bool { return l.termios.Oflag&f != 0 }
func (l *ldisc) lflag(f uint32) bool { return l.termios.Lflag&f != 0 }
func (l *ldisc) cc(i int) byte       { return l.termios.CC[i] }

// setTermios installs t as TCSETS does on a pty slave (n_tty_set_termios
// plus pty_set_termios, which forces 8 data bits without parity).
func (l *ldisc) setTermios(t Termios, initial bool) {
	old := l.termios
	t.Cflag = t.Cflag&^(CSIZE|PARENB) | CS8 | CREAD
	l.termios = t
	if initial || (old.Lflag^t.Lflag)&(ICANON|EXTPROC) != 0 {
		clear(l.in.delim[:])
		if !l.lflag(ICANON) || l.in.len() == 0 {
			l.in.canon = l.in.tail
		} else {
			// Switching to canonical mode: what is queued becomes a line.
			l.in.setDelim(l.in.head-1, true)
			l.in.canon = l.in.head
		}
		l.erasing, l.lnext = false, false
	}
	l.icanon = l.lflag(ICANON)
	if !initial && old.Iflag&IXON != 0 && !l.iflag(IXON) && !l.tcoStopped {
		l.stopped = false
	}
	l.special = [4]uint64{}
	set := func(c byte) { l.special[c/64] |= 1 << (c % 64) }
	if l.iflag(IGNCR) || l.iflag(ICRNL) {
		set('\r')
	}
	if l.iflag(INLCR) {
		set('\n')
	}
	if l.icanon {
		set(l.cc(VERASE))
		set(l.cc(VKILL))
		set(l.cc(VEOF))
		set('\n')
		set(l.cc(VEOL))
		if l.lflag(IEXTEN) {
			set(l.cc(VWERASE))
			set(l.cc(VLNEXT))
			set(l.cc(VEOL2))
			if l.lflag(ECHO) {
				set(l.cc(VREPRINT))
			}
		}
	}
	if l.iflag(IXON) {
		set(l.cc(VSTART))
		set(l.cc(VSTOP))
	}
	if l.lflag(ISIG) {
		set(l.cc(VINTR))
		set(l.cc(VQUIT))
		set(l.cc(VSUSP))
	}
	l.special[0] &^= 1 // NUL is _POSIX_VDISABLE: never special
}

func (l *ldisc) isSpecial(c byte) bool { return l.special[c/64]&(1<<(c%64)) != 0 }

// iscntrl is the kernel's iscntrl: only ASCII controls (its ctype table
// gives 0x80-0x9f no class).
func iscntrl(c byte) bool { return c < 0x20 || c == 0x7f }

func isalnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' ||
		c >= 0xc0 && c != 0xd7 && c != 0xf7 // Latin-1 letters, as the kernel's ctype
}

func (l *ldisc) isContinuation(c byte) bool { return c&0xc0 == 0x80 && l.iflag(IUTF8) }

// inputRoom reports whether the master may put one more character into
// the input (n_tty_receive_buf_common's room). A canonical line that
// fills the whole queue keeps taking characters by replacing its last
// one, so that a newline can still end it.
func (l *ldisc) inputRoom(commit bool) bool {
	room := bufSize - l.in.len()
	if l.iflag(PARMRK) {
		room = (room + 2) / 3
	}
	room--
	if room > 0 {
		return true
	}
	if l.icanon && l.in.canon == l.in.tail {
		if room < 0 && commit {
			l.in.head--
		}
		return true
	}
	return false
}

// receive processes one character the master wrote
// (n_tty_receive_buf_standard for one byte).
func (l *ldisc) receive(c byte) {
	if l.lnext {
		l.lnext = false
		l.receiveLiteral(l.inputMap(c))
		return
	}
	c = l.inputMap(c)
	if l.isSpecial(c) {
		l.receiveSpecial(c)
	} else {
		l.receiveLiteral(c)
	}
}

func (l *ldisc) inputMap(c byte) byte {
	if l.iflag(ISTRIP) {
		c &= 0x7f
	}
	if l.iflag(IUCLC) && l.lflag(IEXTEN) && c >= 'A' && c <= 'Z' {
		c += 'a' - 'A'
	}
	return c
}

// receiveLiteral is n_tty_receive_char: queue and echo.
func (l *ldisc) receiveLiteral(c byte) {
	if l.stopped && !l.tcoStopped && l.iflag(IXON) && l.iflag(IXANY) {
		l.stopped = false
	}
	if l.lflag(ECHO) {
		l.finishErasing()
		if l.in.canon == l.in.head {
			l.canonColumn = l.column
		}
		l.echoChar(c)
	}
	if c == 0o377 && l.iflag(PARMRK) {
		l.in.put(c)
	}
	l.in.put(c)
}

// receiveSpecial is n_tty_receive_char_special.
func (l *ldisc) receiveSpecial(c byte) {
	if l.iflag(IXON) {
		switch c {
		case l.cc(VSTART):
			l.stopped = false
			return
		case l.cc(VSTOP):
			l.stopped = true
			return
		}
	}
	if l.lflag(ISIG) {
		switch c {
		case l.cc(VINTR):
			l.signal(unix.SIGINT, c)
			return
		case l.cc(VQUIT):
			l.signal(unix.SIGQUIT, c)
			return
		case l.cc(VSUSP):
			l.signal(unix.SIGTSTP, c)
			return
		}
	}
	if l.stopped && !l.tcoStopped && l.iflag(IXON) && l.iflag(IXANY) {
		l.stopped = false
	}
	if c == '\r' {
		if l.iflag(IGNCR) {
			return
		}
		if l.iflag(ICRNL) {
			c = '\n'
		}
	} else if c == '\n' && l.iflag(INLCR) {
		c = '\r'
	}
	if l.icanon {
		switch {
		case c == l.cc(VERASE) || c == l.cc(VKILL) || c == l.cc(VWERASE) && l.lflag(IEXTEN):
			l.erase(c)
			return
		case c == l.cc(VLNEXT) && l.lflag(IEXTEN):
			l.lnext = true
			if l.lflag(ECHO) {
				l.finishErasing()
				if l.lflag(ECHOCTL) {
					l.echoRaw('^')
					l.echoRaw('\b')
				}
			}
			return
		case c == l.cc(VREPRINT) && l.lflag(ECHO) && l.lflag(IEXTEN):
			l.finishErasing()
			l.echoChar(c)
			l.echoRaw('\n')
			for i := l.in.canon; i != l.in.head; i++ {
				l.echoChar(l.in.at(i))
			}
			return
		case c == '\n':
			if l.lflag(ECHO) || l.lflag(ECHONL) {
				l.echoRaw('\n')
			}
			l.endLine(c)
			return
		case c == l.cc(VEOF):
			// Queued as a NUL line end, which reads leave out.
			l.endLine(0)
			return
		case c == l.cc(VEOL) || c == l.cc(VEOL2) && l.lflag(IEXTEN):
			if l.lflag(ECHO) {
				if l.in.canon == l.in.head {
					l.canonColumn = l.column
				}
				l.echoChar(c)
			}
			if c == 0o377 && l.iflag(PARMRK) {
				l.in.put(c)
			}
			l.endLine(c)
			return
		}
	}
	if l.lflag(ECHO) {
		l.finishErasing()
		if c == '\n' {
			l.echoRaw('\n')
		} else {
			if l.in.canon == l.in.head {
				l.canonColumn = l.column
			}
			l.echoChar(c)
		}
	}
	if c == 0o377 && l.iflag(PARMRK) {
		l.in.put(c)
	}
	l.in.put(c)
}

// endLine queues c as the end of the current line and makes the line
// readable.
func (l *ldisc) endLine(c byte) {
	if l.in.len() >= bufSize {
		l.in.head-- // the line end replaces the last byte of a full queue
	}
	i := l.in.head
	l.in.put(c)
	l.in.setDelim(i, true)
	l.in.canon = l.in.head
}

// signal is n_tty_receive_signal_char: raise sig for the foreground
// process group, flush the input unless NOFLSH, restart output, echo.
// Linux also drops output the master has not taken from the driver yet;
// here everything the slave wrote is already in the master's queue and
// stays there.
func (l *ldisc) signal(sig unix.Signal, c byte) {
	l.sigs |= 1 << uint(sig)
	if !l.lflag(NOFLSH) {
		l.flushInput()
	}
	if l.iflag(IXON) {
		l.stopped = false
	}
	if l.lflag(ECHO) {
		l.echoChar(c)
	}
}

// erase is n_tty's eraser: VERASE, VWERASE and VKILL with their echoes.
func (l *ldisc) erase(c byte) {
	q := &l.in
	if q.head == q.canon {
		return
	}
	const (
		kErase = iota
		kWerase
		kKill
	)
	var kind int
	switch c {
	case l.cc(VERASE):
		kind = kErase
	case l.cc(VWERASE):
		kind = kWerase
	default:
		if !l.lflag(ECHO) {
			q.head = q.canon
			return
		}
		if !l.lflag(ECHOK) || !l.lflag(ECHOKE) || !l.lflag(ECHOE) {
			q.head = q.canon
			l.finishErasing()
			l.echoChar(l.cc(VKILL))
			if l.lflag(ECHOK) {
				l.echoRaw('\n')
			}
			return
		}
		kind = kKill
	}
	seenAlnums := 0
	for q.head != q.canon {
		head := q.head
		var ch byte
		for {
			head--
			ch = q.at(head)
			if !l.isContinuation(ch) || head == q.canon {
				break
			}
		}
		if l.isContinuation(ch) {
			break // never erase part of a character
		}
		if kind == kWerase {
			if isalnum(ch) || ch == '_' {
				seenAlnums++
			} else if seenAlnums > 0 {
				break
			}
		}
		cnt := q.head - head
		q.head = head
		if l.lflag(ECHO) {
			switch {
			case l.lflag(ECHOPRT):
				if !l.erasing {
					l.echoRaw('\\')
					l.erasing = true
				}
				l.echoChar(ch)
				for ; cnt > 1; cnt-- {
					head++
					l.echoRaw(q.at(head))
				}
			case kind == kErase && !l.lflag(ECHOE):
				l.echoChar(l.cc(VERASE))
			case ch == '\t':
				l.eraseTab()
			default:
				if iscntrl(ch) && l.lflag(ECHOCTL) {
					l.echoString("\b \b")
				}
				if !iscntrl(ch) || l.lflag(ECHOCTL) {
					l.echoString("\b \b")
				}
			}
		}
		if kind == kErase {
			break
		}
	}
	if q.head == q.canon && l.lflag(ECHO) {
		l.finishErasing()
	}
}

// eraseTab backs up over a tab just erased: as many columns as it took,
// found from what precedes it on the line (echo_erase_tab and its
// ECHO_OP_ERASE_TAB).
func (l *ldisc) eraseTab() {
	q := &l.in
	chars, afterTab := 0, false
	for i := q.head; i != q.canon; {
		i--
		c := q.at(i)
		if c == '\t' {
			afterTab = true
			break
		} else if iscntrl(c) {
			if l.lflag(ECHOCTL) {
				chars += 2
			}
		} else if !l.isContinuation(c) {
			chars++
		}
	}
	if !afterTab {
		chars += l.canonColumn
	}
	for n := 8 - chars&7; n > 0; n-- {
		if l.out.free() == 0 {
			return
		}
		l.out.put('\b')
		if l.column > 0 {
			l.column--
		}
	}
}

func (l *ldisc) finishErasing() {
	if l.erasing {
		l.echoRaw('/')
		l.erasing = false
	}
}

// echoChar echoes c, a control character as ^X under ECHOCTL (tabs
// excepted). Echoes that do not fit in the master's queue are lost.
func (l *ldisc) echoChar(c byte) {
	if l.lflag(ECHOCTL) && iscntrl(c) && c != '\t' {
		if l.out.free() >= 2 {
			l.out.put('^')
			l.out.put(c ^ 0o100)
			l.column += 2
		}
		return
	}
	l.echoRaw(c)
}

// echoRaw echoes c through output processing.
func (l *ldisc) echoRaw(c byte) { l.outputChar(c) }

func (l *ldisc) echoString(s string) {
	for i := 0; i < len(s); i++ {
		l.echoRaw(s[i])
	}
}

// outputChar puts c into the master's queue through c_oflag processing
// (do_output_char), or reports false if its expansion does not fit.
func (l *ldisc) outputChar(c byte) bool {
	space := l.out.free()
	if !l.oflag(OPOST) {
		if space < 1 {
			return false
		}
		l.out.put(c)
		return true
	}
	switch c {
	case '\n':
		if l.oflag(ONLRET) {
			l.column = 0
		}
		if l.oflag(ONLCR) {
			if space < 2 {
				return false
			}
			l.column, l.canonColumn = 0, 0
			l.out.put('\r')
			l.out.put('\n')
			return true
		}
		l.canonColumn = l.column
	case '\r':
		if l.oflag(ONOCR) && l.column == 0 {
			return true
		}
		if l.oflag(OCRNL) {
			c = '\n'
			if l.oflag(ONLRET) {
				l.column, l.canonColumn = 0, 0
			}
			break
		}
		l.column, l.canonColumn = 0, 0
	case '\t':
		spaces := 8 - l.column&7
		if l.termios.Oflag&TABDLY == XTABS {
			if space < spaces {
				return false
			}
			l.column += spaces
			for ; spaces > 0; spaces-- {
				l.out.put(' ')
			}
			return true
		}
		l.column += spaces
	case '\b':
		if l.column > 0 {
			l.column--
		}
	default:
		if !iscntrl(c) {
			if l.oflag(OLCUC) && c >= 'a' && c <= 'z' {
				c -= 'a' - 'A'
			}
			if !l.isContinuation(c) {
				l.column++
			}
		}
	}
	if space < 1 {
		return false
	}
	l.out.put(c)
	return true
}

// readable reports whether a slave read would find data: a complete line
// in canonical mode, otherwise at least min bytes.
func (l *ldisc) readable(min int) bool {
	if l.icanon {
		return l.in.canon != l.in.tail
	}
	return l.in.len() >= max(min, 1)
}

// pollMin is the amount that makes a non-canonical slave readable for
// poll (input_available_p with poll set): VMIN when VTIME is 0.
func (l *ldisc) pollMin() int {
	if l.cc(VTIME) == 0 && l.cc(VMIN) > 0 {
		return int(l.cc(VMIN))
	}
	return 1
}

// readCanon copies at most one line into dst (canon_copy_from_read_buf):
// the line end is included unless it is an EOF mark. A read that stops
// inside a line leaves the rest for the next read.
func (l *ldisc) readCanon(dst *scatter) int {
	q := &l.in
	n := 0
	for q.tail != q.canon && !dst.full() {
		i := q.tail
		c := q.at(i)
		eol := q.isDelim(i)
		q.tail++
		if eol {
			q.setDelim(i, false)
			if c != 0 {
				dst.put(c)
				n++
			}
			break
		}
		dst.put(c)
		n++
	}
	return n
}

// readRaw copies up to want queued bytes into dst (non-canonical).
func (l *ldisc) readRaw(dst *scatter, want int) int {
	q := &l.in
	n := 0
	for q.tail != q.head && n < want && !dst.full() {
		start := q.tail % bufSize
		chunk := min(int(q.head-q.tail), bufSize-int(start), want-n)
		c := dst.copy(q.buf[start : int(start)+chunk])
		q.tail += uint64(c)
		n += c
	}
	if q.canon < q.tail {
		q.canon = q.tail
	}
	return n
}

// inq is TIOCINQ on the slave: queued bytes, in canonical mode those of
// complete lines without EOF marks.
func (l *ldisc) inq() int {
	q := &l.in
	if !l.icanon {
		return q.len()
	}
	n := 0
	for i := q.tail; i != q.canon; i++ {
		if !(q.isDelim(i) && q.at(i) == 0) {
			n++
		}
	}
	return n
}

func (l *ldisc) flushInput() {
	l.in.reset()
	l.lnext, l.erasing = false, false
}

func (l *ldisc) flushOutput() { l.out.head, l.out.n = 0, 0 }
