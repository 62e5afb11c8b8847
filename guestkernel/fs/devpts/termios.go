package devpts

import "encoding/binary"

// Termios is the kernel's struct termios2: struct termios (what TCGETS
// and TCSETS copy, 36 bytes) followed by the two speeds (TCGETS2).
type Termios struct {
	Iflag, Oflag, Cflag, Lflag uint32
	Line                       uint8
	CC                         [numCC]uint8
	Ispeed, Ospeed             uint32
}

// Sizes of the app-facing structures.
const (
	numCC       = 19
	termiosLen  = 36 // struct termios
	termios2Len = 44 // struct termios2
	winsizeLen  = 8  // struct winsize
)

// c_iflag bits.
const (
	IGNBRK  = 0o1
	BRKINT  = 0o2
	IGNPAR  = 0o4
	PARMRK  = 0o10
	INPCK   = 0o20
	ISTRIP  = 0o40
	INLCR   = 0o100
	IGNCR   = 0o200
	ICRNL   = 0o400
	IUCLC   = 0o1000
	IXON    = 0o2000
	IXANY   = 0o4000
	IXOFF   = 0o10000
	IMAXBEL = 0o20000
	IUTF8   = 0o40000
)

// c_oflag bits.
const (
	OPOST  = 0o1
	OLCUC  = 0o2
	ONLCR  = 0o4
	OCRNL  = 0o10
	ONOCR  = 0o20
	ONLRET = 0o40
	TABDLY = 0o14000
	XTABS  = 0o14000
)

// c_cflag bits.
const (
	CBAUD   = 0o10017
	CBAUDEX = 0o10000
	BOTHER  = 0o10000
	B38400  = 0o17
	CSIZE   = 0o60
	CS8     = 0o60
	CREAD   = 0o200
	PARENB  = 0o400
	HUPCL   = 0o2000
	CLOCAL  = 0o4000
	ibshift = 16 // CIBAUD is CBAUD shifted by this much
)

// c_lflag bits.
const (
	ISIG    = 0o1
	ICANON  = 0o2
	ECHO    = 0o10
	ECHOE   = 0o20
	ECHOK   = 0o40
	ECHONL  = 0o100
	NOFLSH  = 0o200
	TOSTOP  = 0o400
	ECHOCTL = 0o1000
	ECHOPRT = 0o2000
	ECHOKE  = 0o4000
	IEXTEN  = 0o100000
	EXTPROC = 0o200000
)

// c_cc indexes.
const (
	VINTR    = 0
	VQUIT    = 1
	VERASE   = 2
	VKILL    = 3
	VEOF     = 4
	VTIME    = 5
	VMIN     = 6
	VSTART   = 8
	VSTOP    = 9
	VSUSP    = 10
	VEOL     = 11
	VREPRINT = 12
	VDISCARD = 13
	VWERASE  = 14
	VLNEXT   = 15
	VEOL2    = 16
)

// DefaultTermios is a new pty slave's termios, as Linux's pts driver
// sets it up (tty_std_termios with c_cflag B38400|CS8|CREAD: no HUPCL,
// which is what a pty shows on Linux).
func DefaultTermios() Termios {
	return Termios{
		Iflag:  ICRNL | IXON,
		Oflag:  OPOST | ONLCR,
		Cflag:  B38400 | CS8 | CREAD,
		Lflag:  ISIG | ICANON | ECHO | ECHOE | ECHOK | ECHOCTL | ECHOKE | IEXTEN,
		CC:     [numCC]uint8{VINTR: 3, VQUIT: 034, VERASE: 0o177, VKILL: 025, VEOF: 4, VMIN: 1, VSTART: 021, VSTOP: 023, VSUSP: 032, VREPRINT: 022, VDISCARD: 017, VWERASE: 027, VLNEXT: 026},
		Ispeed: 38400,
		Ospeed: 38400,
	}
}

// marshal writes the first n bytes (termiosLen or termios2Len) of the
// app's layout into b.
func (t *Termios) marshal(b []byte) {
	le := binary.LittleEndian
	le.PutUint32(b[0:], t.Iflag)
	le.PutUint32(b[4:], t.Oflag)
	le.PutUint32(b[8:], t.Cflag)
	le.PutUint32(b[12:], t.Lflag)
	b[16] = t.Line
	copy(b[17:36], t.CC[:])
	if len(b) >= termios2Len {
		le.PutUint32(b[36:], t.Ispeed)
		le.PutUint32(b[40:], t.Ospeed)
	}
}

// unmarshal reads the app's layout; speeds only from a termios2, and
// then, as Linux, recomputed from the baud bits unless they say BOTHER.
func (t *Termios) unmarshal(b []byte) {
	le := binary.LittleEndian
	t.Iflag = le.Uint32(b[0:])
	t.Oflag = le.Uint32(b[4:])
	t.Cflag = le.Uint32(b[8:])
	t.Lflag = le.Uint32(b[12:])
	t.Line = b[16]
	copy(t.CC[:], b[17:36])
	if len(b) >= termios2Len {
		t.Ispeed = le.Uint32(b[36:])
		t.Ospeed = le.Uint32(b[40:])
	}
	t.Ospeed = t.outputSpeed()
	t.Ispeed = t.inputSpeed()
}

// baudTable is Linux's baud_table: CBAUD values 0..15, then the CBAUDEX
// ones (B57600 = CBAUDEX|1 ...) from index 16.
var baudTable = [...]uint32{
	0, 50, 75, 110, 134, 150, 200, 300, 600, 1200, 1800, 2400, 4800, 9600, 19200, 38400,
	57600, 115200, 230400, 460800, 500000, 576000, 921600, 1000000, 1152000, 1500000,
	2000000, 2500000, 3000000, 3500000, 4000000,
}

func baudOf(cbaud uint32, other uint32) uint32 {
	if cbaud == BOTHER {
		return other
	}
	if cbaud&CBAUDEX != 0 {
		cbaud = cbaud&^CBAUDEX + 15
	}
	if int(cbaud) < len(baudTable) {
		return baudTable[cbaud]
	}
	return 0
}

// outputSpeed is tty_termios_baud_rate.
func (t *Termios) outputSpeed() uint32 { return baudOf(t.Cflag&CBAUD, t.Ospeed) }

// inputSpeed is tty_termios_input_baud_rate: B0 in CIBAUD means "same
// as output".
func (t *Termios) inputSpeed() uint32 {
	cb := t.Cflag >> ibshift & CBAUD
	if cb == 0 {
		return t.outputSpeed()
	}
	return baudOf(cb, t.Ispeed)
}

// Winsize is struct winsize.
type Winsize struct {
	Row, Col, Xpixel, Ypixel uint16
}

func (w *Winsize) marshal(b []byte) {
	le := binary.LittleEndian
	le.PutUint16(b[0:], w.Row)
	le.PutUint16(b[2:], w.Col)
	le.PutUint16(b[4:], w.Xpixel)
	le.PutUint16(b[6:], w.Ypixel)
}

func (w *Winsize) unmarshal(b []byte) {
	le := binary.LittleEndian
	*w = Winsize{le.Uint16(b[0:]), le.Uint16(b[2:]), le.Uint16(b[4:]), le.Uint16(b[6:])}
}
