package syscalls

import (
	"encoding/binary"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/guestkernel/kernel"
)

func init() {
	partial(unix.SYS_CLOCK_GETTIME, "CPU-time clocks count wall time spent in app code", sysClockGettime, aInt, aHex)
	full(unix.SYS_CLOCK_GETRES, sysClockGetres, aInt, aHex)
	full(unix.SYS_GETTIMEOFDAY, sysGettimeofday, aHex, aHex)
	full(unix.SYS_TIME, sysTime, aHex)
	full(unix.SYS_NANOSLEEP, sysNanosleep, aHex, aHex)
	full(unix.SYS_CLOCK_NANOSLEEP, sysClockNanosleep, aInt, aHex, aHex, aHex)
}

// Clock ids.
const (
	clockRealtime        = 0
	clockMonotonic       = 1
	clockProcessCPUTime  = 2
	clockThreadCPUTime   = 3
	clockMonotonicRaw    = 4
	clockRealtimeCoarse  = 5
	clockMonotonicCoarse = 6
	clockBoottime        = 7
	clockRealtimeAlarm   = 8
	clockBoottimeAlarm   = 9
	clockTAI             = 11
	timerAbstime         = 1
	nsecPerSec           = 1_000_000_000
)

// hostClock maps an app clock to the host clock that serves it; ok is
// false for clocks the Sentry keeps itself or does not know.
func hostClock(id int32) (int32, bool) {
	switch id {
	case clockRealtime, clockMonotonic, clockMonotonicRaw, clockRealtimeCoarse,
		clockMonotonicCoarse, clockBoottime, clockTAI:
		return id, true
	case clockRealtimeAlarm:
		return clockRealtime, true
	case clockBoottimeAlarm:
		return clockBoottime, true
	}
	return 0, false
}

func now(t *kernel.Task, id int32) (unix.Timespec, error) {
	if hc, ok := hostClock(id); ok {
		var ts unix.Timespec
		err := unix.ClockGettime(hc, &ts)
		return ts, err
	}
	switch id {
	case clockProcessCPUTime, clockThreadCPUTime:
		return unix.NsecToTimespec(t.AppTime().Nanoseconds()), nil
	}
	return unix.Timespec{}, unix.EINVAL
}

func putTimespec(t *kernel.Task, addr uint64, ts unix.Timespec) error {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:], uint64(ts.Sec))
	binary.LittleEndian.PutUint64(b[8:], uint64(ts.Nsec))
	if _, err := t.MM().CopyOut(addr, b[:]); err != nil {
		return unix.EFAULT
	}
	return nil
}

func getTimespec(t *kernel.Task, addr uint64) (unix.Timespec, error) {
	var b [16]byte
	if _, err := t.MM().CopyIn(addr, b[:]); err != nil {
		return unix.Timespec{}, unix.EFAULT
	}
	ts := unix.Timespec{Sec: int64(binary.LittleEndian.Uint64(b[:])), Nsec: int64(binary.LittleEndian.Uint64(b[8:]))}
	if ts.Sec < 0 || ts.Nsec < 0 || ts.Nsec >= nsecPerSec {
		return ts, unix.EINVAL
	}
	return ts, nil
}

func sysClockGettime(t *kernel.Task, a *[6]uint64) (uint64, error) {
	ts, err := now(t, int32(a[0]))
	if err != nil {
		return 0, err
	}
	return 0, putTimespec(t, a[1], ts)
}

func sysClockGetres(t *kernel.Task, a *[6]uint64) (uint64, error) {
	id := int32(a[0])
	res := unix.Timespec{Nsec: 1}
	if hc, ok := hostClock(id); ok {
		if err := unix.ClockGetres(hc, &res); err != nil {
			return 0, err
		}
	} else if id != clockProcessCPUTime && id != clockThreadCPUTime {
		return 0, unix.EINVAL
	}
	if a[1] == 0 {
		return 0, nil
	}
	return 0, putTimespec(t, a[1], res)
}

func sysGettimeofday(t *kernel.Task, a *[6]uint64) (uint64, error) {
	if a[0] != 0 {
		var tv unix.Timeval
		if err := unix.Gettimeofday(&tv); err != nil {
			return 0, err
		}
		var b [16]byte
		binary.LittleEndian.PutUint64(b[:], uint64(tv.Sec))
		binary.LittleEndian.PutUint64(b[8:], uint64(tv.Usec))
		if _, err := t.MM().CopyOut(a[0], b[:]); err != nil {
			return 0, unix.EFAULT
		}
	}
	if a[1] != 0 {
		// struct timezone is obsolete; Linux reports what settimeofday
		// set, which in a sandbox is always zero.
		if _, err := t.MM().CopyOut(a[1], make([]byte, 8)); err != nil {
			return 0, unix.EFAULT
		}
	}
	return 0, nil
}

func sysTime(t *kernel.Task, a *[6]uint64) (uint64, error) {
	sec := uint64(time.Now().Unix())
	if a[0] != 0 {
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], sec)
		if _, err := t.MM().CopyOut(a[0], b[:]); err != nil {
			return 0, unix.EFAULT
		}
	}
	return sec, nil
}

func sleepFor(t *kernel.Task, d time.Duration, remAddr uint64) (uint64, error) {
	left, err := t.Sleep(d)
	if err == nil {
		return 0, nil
	}
	if remAddr != 0 {
		if perr := putTimespec(t, remAddr, unix.NsecToTimespec(left.Nanoseconds())); perr != nil {
			return 0, perr
		}
	}
	return 0, err
}

func sysNanosleep(t *kernel.Task, a *[6]uint64) (uint64, error) {
	ts, err := getTimespec(t, a[0])
	if err != nil {
		return 0, err
	}
	return sleepFor(t, time.Duration(ts.Nano()), a[1])
}

func sysClockNanosleep(t *kernel.Task, a *[6]uint64) (uint64, error) {
	id, flags := int32(a[0]), a[1]
	switch id {
	case clockRealtime, clockMonotonic, clockBoottime, clockTAI, clockRealtimeAlarm, clockBoottimeAlarm:
	case clockThreadCPUTime:
		return 0, unix.EINVAL
	case clockProcessCPUTime:
		return 0, unix.EOPNOTSUPP
	default:
		return 0, unix.EINVAL
	}
	ts, err := getTimespec(t, a[2])
	if err != nil {
		return 0, err
	}
	d := time.Duration(ts.Nano())
	if flags&timerAbstime != 0 {
		cur, err := now(t, id)
		if err != nil {
			return 0, err
		}
		d -= time.Duration(cur.Nano())
		if d <= 0 {
			return 0, nil
		}
		_, err = t.Sleep(d)
		return 0, err // an absolute sleep reports no remainder
	}
	return sleepFor(t, d, a[3])
}
