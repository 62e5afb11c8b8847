// Package logging owns Ringfence's debug log: where it goes (stderr, a
// file, or one file per process in a directory), its levels, and the
// once-only warnings the Sentry emits for unimplemented features.
package logging

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

var (
	mu    sync.Mutex
	out   io.Writer = os.Stderr
	debug atomic.Bool
	// toFile is set when the log has its own file: warnings then always go
	// there. On stderr they would mix with the app's own output, so they
	// appear only with --debug.
	toFile atomic.Bool
	once   sync.Map
)

// Setup directs the log. path "" keeps stderr; a path ending in "/" is a
// directory that gets one file per process named after the time, the pid
// and the command (like runsc.20261122-193000.123456.do.log).
func Setup(path string, enableDebug bool, command string) error {
	debug.Store(enableDebug)
	if path == "" {
		return nil
	}
	if strings.HasSuffix(path, "/") {
		if err := os.MkdirAll(path, 0o755); err != nil {
			return fmt.Errorf("--debug-log directory %s: %w", path, err)
		}
		// Named by the process's start time, not now: a process that
		// re-executes itself (the gofer confining itself) keeps its file.
		name := fmt.Sprintf("runsc.%s.%06d.%s.log", processStart().Format("20060102-150405.00"), os.Getpid(), command)
		path = filepath.Join(path, name)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("--debug-log %s: %w", path, err)
	}
	mu.Lock()
	out = f
	mu.Unlock()
	toFile.Store(true)
	return nil
}

// DebugEnabled reports whether debug messages are written.
func DebugEnabled() bool { return debug.Load() }

func write(level byte, format string, args []any) {
	now := time.Now()
	msg := fmt.Sprintf(format, args...)
	line := fmt.Sprintf("%c%s.%06d %7d] %s\n", level, now.Format("0102 15:04:05"), now.Nanosecond()/1000, os.Getpid(), msg)
	mu.Lock()
	io.WriteString(out, line)
	mu.Unlock()
}

// Debugf logs when debugging is on.
func Debugf(format string, args ...any) {
	if debug.Load() {
		write('D', format, args)
	}
}

// Infof logs when debugging is on (info is debug-log material too).
func Infof(format string, args ...any) {
	if debug.Load() {
		write('I', format, args)
	}
}

// Warningf logs to the debug log file, or to stderr with --debug.
func Warningf(format string, args ...any) {
	if toFile.Load() || debug.Load() {
		write('W', format, args)
	}
}

// Tracef writes a strace line whatever the level.
func Tracef(format string, args ...any) { write('I', format, args) }

// WarnOnce logs a warning the first time key is seen in this process.
func WarnOnce(key string, format string, args ...any) {
	if _, loaded := once.LoadOrStore(key, true); !loaded {
		Warningf(format, args...)
	}
}

// DebugOnce logs at debug level the first time key is seen.
func DebugOnce(key string, format string, args ...any) {
	if !debug.Load() {
		return
	}
	if _, loaded := once.LoadOrStore(key, true); !loaded {
		write('D', format, args)
	}
}

// processStart is when this process started (from /proc: boot time plus
// the start field of /proc/self/stat), or now if /proc cannot say.
func processStart() time.Time {
	stat, err1 := os.ReadFile("/proc/self/stat")
	sys, err2 := os.ReadFile("/proc/stat")
	if err1 != nil || err2 != nil {
		return time.Now()
	}
	i := strings.LastIndexByte(string(stat), ')')
	if i < 0 {
		return time.Now()
	}
	fields := strings.Fields(string(stat[i+1:]))
	if len(fields) < 20 {
		return time.Now()
	}
	ticks, err := strconv.ParseInt(fields[19], 10, 64) // field 22: starttime
	if err != nil {
		return time.Now()
	}
	for _, line := range strings.Split(string(sys), "\n") {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			btime, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				break
			}
			const clkTck = 100 // USER_HZ on x86-64
			return time.Unix(btime, 0).Add(time.Duration(ticks) * time.Second / clkTck)
		}
	}
	return time.Now()
}
