package seccomp

import (
	"strings"
	"testing"
)

func TestCheckSupportRefusesOldOrForeignKernels(t *testing.T) {
	cases := []struct {
		release, machine string
		notif            bool
		want             string // "" = supported
	}{
		{"6.18.44-fc-v595", "x86_64", true, ""},
		{"5.14.0-362.el9.x86_64", "x86_64", true, ""},
		{"5.10.0-28-amd64", "x86_64", true, "needs Linux 5.14 or newer for SECCOMP_ADDFD_FLAG_SEND"},
		{"5.4.0-150-generic", "x86_64", true, "needs Linux 5.6 or newer"},
		{"6.1.0", "aarch64", true, "x86_64 Linux only"},
		{"6.1.0", "x86_64", false, "seccomp user notification is not available"},
		{"garbage", "x86_64", true, "cannot parse kernel release"},
	}
	for _, c := range cases {
		err := checkSupport(c.release, c.machine, c.notif)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s/%s: unexpected error %v", c.release, c.machine, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s/%s: error %v, want one containing %q", c.release, c.machine, err, c.want)
		}
	}
}

// The real probe on this machine, which the integration tests need.
func TestCheckOnThisKernel(t *testing.T) {
	if err := Check(); err != nil {
		t.Fatalf("this machine must support the interposition layer: %v", err)
	}
}

func TestFilterEncodesAndDecodes(t *testing.T) {
	prog := Filter(AllOptions)
	back, err := Decode(Encode(prog))
	if err != nil {
		t.Fatal(err)
	}
	if len(back) != len(prog) {
		t.Fatalf("round trip changed the program length: %d -> %d", len(prog), len(back))
	}
	for i := range prog {
		if prog[i] != back[i] {
			t.Fatalf("instruction %d changed: %+v -> %+v", i, prog[i], back[i])
		}
	}
	if _, err := Decode([]byte{1, 2, 3}); err == nil {
		t.Error("a truncated program must be rejected")
	}
}
