package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ringfence/ringfence/gofer/process"
	"github.com/ringfence/ringfence/gofer/proto"
)

// goferHelperEnv makes TestGoferHelper act as `runsc gofer`, so the real
// command line runs in a child without building the binary.
const goferHelperEnv = "RUNSC_TEST_GOFER_HELPER"

// TestGoferHelper is not a test: in a child started with goferHelperEnv it
// runs the runsc CLI on the arguments after "--" and exits.
func TestGoferHelper(t *testing.T) {
	if os.Getenv(goferHelperEnv) != "1" {
		t.Skip("helper process for TestGoferCommand")
	}
	args := []string{"runsc"}
	for i, a := range os.Args {
		if a == "--" {
			args = append(args, os.Args[i+1:]...)
			break
		}
	}
	os.Exit(run(args, os.Stdout, os.Stderr))
}

func TestGoferMountFlag(t *testing.T) {
	var l mountList
	for _, v := range []string{"rw:/a,b", "ro:/c:d"} {
		if err := l.Set(v); err != nil {
			t.Fatal(err)
		}
	}
	want := []process.Mount{{Source: "/a,b"}, {Source: "/c:d", ReadOnly: true}}
	if len(l.mounts) != 2 || l.mounts[0] != want[0] || l.mounts[1] != want[1] {
		t.Fatalf("mounts %+v, want %+v", l.mounts, want)
	}
	if err := l.Set("/no/mode"); err == nil {
		t.Fatal("a value without a mode was accepted")
	}
}

func TestGoferUsage(t *testing.T) {
	for _, args := range [][]string{
		{"runsc", "gofer"},
		{"runsc", "gofer", "--mount=/x"},
		{"runsc", "gofer", "--mount=rw:/x", "extra"},
	} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != exitUsage {
			t.Errorf("%q: exit %d, want %d (%s)", args, code, exitUsage, errb.String())
		}
	}
}

// TestGoferCommand runs `runsc gofer` through process.Spawn, with a global
// debug-log flag passed through and a path with a comma in it.
func TestGoferCommand(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the gofer confines itself, which needs root")
	}
	root := filepath.Join(t.TempDir(), "a,b")
	logs := t.TempDir() + "/"
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "f"), []byte("via runsc"), 0o644); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	g, err := process.Spawn(process.SpawnOptions{
		Mounts: []process.Mount{{Source: root, ReadOnly: true}},
		Args:   []string{"-test.run=^TestGoferHelper$", "--", "--debug", "--debug-log=" + logs, "gofer"},
		Env:    append(os.Environ(), goferHelperEnv+"=1"),
		Stderr: &stderr,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Kill()
	c := g.Conns()[0]
	call := func(tag uint32, m proto.Message) (proto.Message, []int) {
		t.Helper()
		if err := c.Send(tag, m, nil); err != nil {
			t.Fatal(err)
		}
		_, r, fds, err := c.Recv()
		if err != nil {
			t.Fatalf("recv: %v; stderr:\n%s", err, stderr.String())
		}
		return r, fds
	}
	call(1, &proto.HelloReq{Hello: proto.Hello{Version: proto.Version, MaxMessageSize: proto.MaxMessageSize}})
	r, _ := call(2, &proto.WalkReq{Dir: 0, Names: []string{"f"}})
	w, ok := r.(*proto.WalkResp)
	if !ok || len(w.Handles) != 1 {
		t.Fatalf("walk: %#v", r)
	}
	r, fds := call(3, &proto.OpenReq{Handle: w.Handles[0], Flags: unix.O_RDONLY})
	if len(fds) != 1 {
		t.Fatalf("open: %#v", r)
	}
	buf := make([]byte, 64)
	n, _ := unix.Read(fds[0], buf)
	unix.Close(fds[0])
	if string(buf[:n]) != "via runsc" {
		t.Fatalf("read %q", buf[:n])
	}
	if err := g.Close(); err != nil {
		t.Fatalf("gofer exit: %v; stderr:\n%s", err, stderr.String())
	}
	// The debug log reached the gofer: a per-process log names it.
	ents, _ := os.ReadDir(logs)
	found := false
	for _, e := range ents {
		b, _ := os.ReadFile(filepath.Join(logs, e.Name()))
		if strings.HasSuffix(e.Name(), ".gofer.log") && strings.Contains(string(b), "gofer: serving ro:"+root) {
			found = true
		}
	}
	if !found {
		t.Errorf("no gofer debug log in %s (%v)", logs, ents)
	}
}
