// Command kvmprobe is the guest-side program of the qemuguest tests. Build it
// static (CGO_ENABLED=0) and run it through qemuguest.
//
//	kvmprobe            check /dev/kvm: API version, capabilities, and one
//	                    tiny real-mode guest run; exit 0 if all is as on
//	                    hardware, 7 if the API version or a capability is
//	                    wrong, 8 if the tiny guest did not run as expected
//	kvmprobe exit N     print the arguments, $QG_TEST and the first line of
//	                    each file named in $QG_FILES (colon-separated) to
//	                    stdout, a line to stderr, and exit N
package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// KVM ioctls and constants (linux/kvm.h).
const (
	kvmGetAPIVersion       = 0xAE00
	kvmCreateVM            = 0xAE01
	kvmCheckExtension      = 0xAE03
	kvmGetVCPUMmapSize     = 0xAE04
	kvmCreateVCPU          = 0xAE41
	kvmSetUserMemoryRegion = 0x4020AE46
	kvmRun                 = 0xAE80
	kvmGetRegs             = 0x8090AE81
	kvmSetRegs             = 0x4090AE82
	kvmGetSregs            = 0x8138AE83
	kvmSetSregs            = 0x4138AE84

	capSyncRegs      = 74
	capImmediateExit = 136

	exitIO  = 2
	exitHLT = 5
)

func main() {
	if len(os.Args) > 2 && os.Args[1] == "exit" {
		os.Exit(echo(os.Args[2]))
	}
	os.Exit(probe())
}

func echo(code string) int {
	n, err := strconv.Atoi(code)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kvmprobe: bad exit status", code)
		return 99
	}
	fmt.Printf("args: %q\n", os.Args[1:])
	fmt.Printf("QG_TEST=%q environ=%d\n", os.Getenv("QG_TEST"), len(os.Environ()))
	wd, _ := os.Getwd()
	fmt.Printf("cwd: %s\n", wd)
	if files := os.Getenv("QG_FILES"); files != "" {
		for _, f := range strings.Split(files, ":") {
			fh, err := os.Open(f)
			if err != nil {
				fmt.Printf("file %s: %v\n", f, err)
				continue
			}
			sc := bufio.NewScanner(fh)
			sc.Scan()
			fmt.Printf("file %s: %s\n", f, sc.Text())
			fh.Close()
		}
	}
	fmt.Fprintln(os.Stderr, "to stderr")
	return n
}

func ioctl(fd int, req, arg uintptr) (uintptr, error) {
	r, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, arg)
	if errno != 0 {
		return r, errno
	}
	return r, nil
}

// ioctlPtr is ioctl with a pointer argument, kept a pointer up to the system
// call so the object cannot move or be freed before it.
func ioctlPtr(fd int, req uintptr, arg unsafe.Pointer) (uintptr, error) {
	r, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(arg))
	if errno != 0 {
		return r, errno
	}
	return r, nil
}

func probe() int {
	fd, err := unix.Open("/dev/kvm", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		fmt.Printf("open /dev/kvm: %v\n", err)
		return 7
	}
	ok := true
	api, err := ioctl(fd, kvmGetAPIVersion, 0)
	fmt.Printf("KVM_GET_API_VERSION: %d (err %v)\n", api, err)
	ok = ok && err == nil && api == 12
	for _, c := range []struct {
		name string
		cap  uintptr
	}{{"KVM_CAP_SYNC_REGS", capSyncRegs}, {"KVM_CAP_IMMEDIATE_EXIT", capImmediateExit}} {
		r, err := ioctl(fd, kvmCheckExtension, c.cap)
		fmt.Printf("KVM_CHECK_EXTENSION %s(%d): %d (err %v)\n", c.name, c.cap, r, err)
		ok = ok && err == nil && r != 0
	}
	if !ok {
		fmt.Println("result: missing")
		return 7
	}
	if err := runTinyGuest(fd); err != nil {
		fmt.Printf("tiny guest: %v\n", err)
		return 8
	}
	fmt.Println("result: ok")
	return 0
}

// runTinyGuest runs, in real mode at 0x1000: mov al,42; out 0x10,al; hlt;
// and expects an I/O exit carrying 42, then a HLT exit.
func runTinyGuest(kvm int) error {
	vmfd, err := ioctl(kvm, kvmCreateVM, 0)
	if err != nil {
		return fmt.Errorf("KVM_CREATE_VM: %w", err)
	}
	vm := int(vmfd)
	mem, err := unix.Mmap(-1, 0, 0x10000, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return err
	}
	copy(mem[0x1000:], []byte{0xb0, 42, 0xe6, 0x10, 0xf4})
	region := struct {
		slot, flags                    uint32
		guestPhys, size, userspaceAddr uint64
	}{0, 0, 0, uint64(len(mem)), uint64(uintptr(unsafe.Pointer(&mem[0])))}
	if _, err := ioctlPtr(vm, kvmSetUserMemoryRegion, unsafe.Pointer(&region)); err != nil {
		return fmt.Errorf("KVM_SET_USER_MEMORY_REGION: %w", err)
	}
	cpufd, err := ioctl(vm, kvmCreateVCPU, 0)
	if err != nil {
		return fmt.Errorf("KVM_CREATE_VCPU: %w", err)
	}
	cpu := int(cpufd)
	size, err := ioctl(kvm, kvmGetVCPUMmapSize, 0)
	if err != nil {
		return fmt.Errorf("KVM_GET_VCPU_MMAP_SIZE: %w", err)
	}
	run, err := unix.Mmap(cpu, 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("mmap kvm_run: %w", err)
	}
	// struct kvm_sregs: cs is the first kvm_segment (base u64 at 0,
	// selector u16 at 12).
	var sregs [312]byte
	if _, err := ioctlPtr(cpu, kvmGetSregs, unsafe.Pointer(&sregs[0])); err != nil {
		return fmt.Errorf("KVM_GET_SREGS: %w", err)
	}
	*(*uint64)(unsafe.Pointer(&sregs[0])) = 0
	*(*uint16)(unsafe.Pointer(&sregs[12])) = 0
	if _, err := ioctlPtr(cpu, kvmSetSregs, unsafe.Pointer(&sregs[0])); err != nil {
		return fmt.Errorf("KVM_SET_SREGS: %w", err)
	}
	// struct kvm_regs: 18 u64, rip is [16], rflags [17].
	var regs [18]uint64
	regs[16], regs[17] = 0x1000, 2
	if _, err := ioctlPtr(cpu, kvmSetRegs, unsafe.Pointer(&regs[0])); err != nil {
		return fmt.Errorf("KVM_SET_REGS: %w", err)
	}
	exitReason := func() uint32 { return *(*uint32)(unsafe.Pointer(&run[8])) }
	if _, err := ioctl(cpu, kvmRun, 0); err != nil {
		return fmt.Errorf("KVM_RUN: %w", err)
	}
	if r := exitReason(); r != exitIO {
		return fmt.Errorf("first exit reason %d, want KVM_EXIT_IO (%d)", r, exitIO)
	}
	// kvm_run.io: direction u8 @32, size u8 @33, port u16 @34, count u32 @36,
	// data_offset u64 @40.
	port := *(*uint16)(unsafe.Pointer(&run[34]))
	dataOff := *(*uint64)(unsafe.Pointer(&run[40]))
	val := run[dataOff]
	fmt.Printf("tiny guest: KVM_EXIT_IO port %#x value %d\n", port, val)
	if port != 0x10 || val != 42 {
		return fmt.Errorf("I/O exit on port %#x with %d, want 0x10 and 42", port, val)
	}
	if _, err := ioctl(cpu, kvmRun, 0); err != nil {
		return fmt.Errorf("KVM_RUN: %w", err)
	}
	if r := exitReason(); r != exitHLT {
		return fmt.Errorf("second exit reason %d, want KVM_EXIT_HLT (%d)", r, exitHLT)
	}
	var after [18]uint64
	if _, err := ioctlPtr(cpu, kvmGetRegs, unsafe.Pointer(&after[0])); err != nil {
		return fmt.Errorf("KVM_GET_REGS: %w", err)
	}
	fmt.Printf("tiny guest: KVM_EXIT_HLT at rip %#x\n", after[16])
	return nil
}
