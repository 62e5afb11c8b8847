#!/bin/busybox sh
# /init of the qemuguest initramfs, embedded by initramfs.go. It is the same
# for every run; what changes per run is in /qg/run.conf.
#
# Serial ports, as wired by the host:
#   ttyS0  kernel console (and this script's own stdout/stderr)
#   ttyS1  the program's stdout     ttyS2  the program's stderr
#   ttyS3  control channel: one line per event, read by the host:
#          "booted <kernel>", "insmod <module>", "kvm ok",
#          "fail <reason>", "dmesg <line>", "start", "ran <status>"
#          (the program exited), "warn <text>",
#          "exit <status>" (its output is flushed)
# The status is also written to the isa-debug-exit port (0xf4) through
# /dev/port, which makes qemu exit at once with (status<<1)|1.

/bin/busybox --install -s /bin
export PATH=/bin
mkdir -p /proc /sys /dev /tmp /run
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# --file files may sit in /tmp: move them onto the tmpfs.
if [ -n "$(ls -A /tmp)" ]; then
	mv /tmp /qg/tmp.initramfs
	mkdir /tmp
	mount -t tmpfs -o mode=1777 tmpfs /tmp
	cp -a /qg/tmp.initramfs/. /tmp/ && rm -rf /qg/tmp.initramfs
else
	mount -t tmpfs -o mode=1777 tmpfs /tmp
fi
mkdir -p /dev/pts /dev/shm
ln -s /proc/self/fd /dev/fd
ln -s fd/0 /dev/stdin
ln -s fd/1 /dev/stdout
ln -s fd/2 /dev/stderr
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm

# Keep the three channels open for the whole run; raw mode so bytes pass
# unchanged (no \n -> \r\n, no echo).
exec 5>/dev/ttyS1 6>/dev/ttyS2 9>/dev/ttyS3
for t in ttyS1 ttyS2 ttyS3; do stty -F /dev/$t raw -echo; done

say() { echo "$*" >&9; }

# drain waits until what was written to the port has left the UART:
# stty sets the attributes with TCSADRAIN.
drain() { stty -F /dev/$1 raw -echo; }

finish() {
	say "exit $1"
	drain ttyS3
	printf "\\$(printf %03o $(($1 & 255)))" | dd of=/dev/port bs=1 seek=244 count=1 2>/dev/null
	# No /dev/port or no debug-exit device: power off instead (qemu runs
	# with -no-reboot, so it exits either way).
	poweroff -f
}

fail() {
	say "fail $(echo "$*" | tr "\n" " ")"
	dmesg | tail -n 10 | while read -r l; do say "dmesg $l"; done
	finish 3
}

say "booted $(uname -r)"

for m in $(cat /qg/modules/order); do
	out=$(insmod "/qg/modules/$m" 2>&1) || fail "insmod $m: $out"
	say "insmod $m"
done
[ -c /dev/kvm ] || fail "/dev/kvm missing after loading the modules"
say "kvm ok"

. /qg/run.conf

mkdir -p /run/qg
mkfifo /run/qg/out /run/qg/err
cat /run/qg/out >&5 6>&- 9>&- &
c1=$!
cat /run/qg/err >&6 5>&- 9>&- &
c2=$!
say start
(cd "$QG_WORKDIR" && qg_exec) >/run/qg/out 2>/run/qg/err </dev/null 5>&- 6>&- 9>&-
st=$?
say "ran $st"
# Whatever the program left running may keep the pipes open: give it 10 s,
# then stop relaying and report.
(sleep 10; say "warn processes the program started kept its stdout or stderr open; output after 10 s dropped"; kill $c1 $c2) 2>/dev/null 5>&- 6>&- &
k=$!
wait $c1 $c2
kill $k 2>/dev/null
drain ttyS1
drain ttyS2
finish $st
