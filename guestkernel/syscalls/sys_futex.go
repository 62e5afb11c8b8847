package syscalls

import (
	"encoding/binary"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/kernel"
	"github.com/ringfence/ringfence/logging"
)

func init() {
	partial(unix.SYS_FUTEX, "WAIT, WAKE, WAIT_BITSET, WAKE_BITSET, REQUEUE, CMP_REQUEUE within one address space; PI and WAKE_OP are ENOSYS", sysFutex, aHex, aHex, aInt, aHex, aHex, aInt)
}

// futex(2) operations.
const (
	futexWait          = 0
	futexWake          = 1
	futexRequeue       = 3
	futexCmpRequeue    = 4
	futexWaitBitset    = 9
	futexWakeBitset    = 10
	futexPrivateFlag   = 128
	futexClockRealtime = 256
)

func sysFutex(t *kernel.Task, a *[6]uint64) (uint64, error) {
	addr, op, val, tsAddr, addr2, val3 := a[0], int(a[1]), uint32(a[2]), a[3], a[4], uint32(a[5])
	cmd := op &^ (futexPrivateFlag | futexClockRealtime)
	switch cmd {
	case futexWait, futexWaitBitset:
		bitset := ^uint32(0)
		if cmd == futexWaitBitset {
			if val3 == 0 {
				return 0, unix.EINVAL
			}
			bitset = val3
		}
		var deadline time.Time
		if tsAddr != 0 {
			var b [16]byte
			if _, err := t.MM().CopyIn(tsAddr, b[:]); err != nil {
				return 0, unix.EFAULT
			}
			sec, nsec := int64(binary.LittleEndian.Uint64(b[:])), int64(binary.LittleEndian.Uint64(b[8:]))
			if sec < 0 || nsec < 0 || nsec >= 1e9 {
				return 0, unix.EINVAL
			}
			d := time.Duration(sec)*time.Second + time.Duration(nsec)
			if cmd == futexWait {
				deadline = time.Now().Add(d) // relative
			} else if op&futexClockRealtime != 0 {
				deadline = time.Unix(sec, nsec)
			} else {
				deadline = time.Now().Add(time.Duration(monotonicUntil(sec, nsec)))
			}
		}
		err := t.FutexWait(addr, val, bitset, deadline)
		return 0, err
	case futexWake, futexWakeBitset:
		bitset := ^uint32(0)
		if cmd == futexWakeBitset {
			if val3 == 0 {
				return 0, unix.EINVAL
			}
			bitset = val3
		}
		if addr%4 != 0 {
			return 0, unix.EINVAL
		}
		return uint64(t.FutexWake(addr, int(int32(val)), bitset)), nil
	case futexRequeue, futexCmpRequeue:
		if addr%4 != 0 || addr2%4 != 0 || int32(val) < 0 || int32(a[3]) < 0 {
			return 0, unix.EINVAL
		}
		n, err := t.FutexRequeue(addr, addr2, int(val), int(int32(a[3])), cmd == futexCmpRequeue, val3)
		return uint64(n), err
	}
	logging.WarnOnce("futex-"+strconv.Itoa(cmd), "futex operation %d is not supported; returning ENOSYS", cmd)
	return 0, unix.ENOSYS
}

// monotonicUntil converts an absolute CLOCK_MONOTONIC time to a duration
// from now.
func monotonicUntil(sec, nsec int64) int64 {
	var now unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &now)
	return (sec-now.Sec)*1e9 + (nsec - now.Nsec)
}
