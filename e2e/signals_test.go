package e2e

import "testing"

// TestSigHandlers runs app signal handlers: frames, rt_sigreturn, masks,
// the alternate stack, fault handlers, timers and syscall restart.
func TestSigHandlers(t *testing.T) {
	progTest(t, "sig_handlers", bothLinks, nil, NativeExit(0))
}
