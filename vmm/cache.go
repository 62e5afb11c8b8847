package vmm

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
)

// probeCache is what the semantics probe leaves in the state directory:
// valid until the host reboots (its boot id changes).
type probeCache struct {
	BootID string
	Report Report
}

// cachedSemantics returns the semantics probe's report, from dir when an
// earlier runsc wrote it during this boot, else by probing (and writing it
// for the next runsc). The cache is an optimisation: any trouble with it
// just means probing.
func cachedSemantics(dir string, logf func(string, ...any)) (Report, error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	bootID := readBootID()
	path := filepath.Join(dir, "kvm-probe.json")
	if dir != "" && bootID != "" {
		if b, err := os.ReadFile(path); err == nil {
			var c probeCache
			if json.Unmarshal(b, &c) == nil && c.BootID == bootID {
				logf("kvm: probe cached in %s: %v", path, c.Report)
				return c.Report, nil
			}
		}
	}
	rep, err := probeSemantics()
	if err != nil || dir == "" || bootID == "" {
		return rep, err
	}
	b, _ := json.Marshal(probeCache{BootID: bootID, Report: rep})
	if err := os.MkdirAll(dir, 0o711); err != nil {
		logf("kvm: not caching the probe: %v", err)
		return rep, nil
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil || os.Rename(tmp, path) != nil {
		logf("kvm: not caching the probe in %s: %v", dir, err)
	}
	return rep, nil
}

func readBootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
