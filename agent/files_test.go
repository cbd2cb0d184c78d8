package agent_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/remocal/remocal/internal/agentclient"
	"github.com/remocal/remocal/internal/localenv"
	"github.com/remocal/remocal/protocol/wire"
	"github.com/remocal/remocal/test/envtest"
)

func TestWelcomeDescribesTarget(t *testing.T) {
	env := envtest.New(t)
	c := connect(t, startAgent(t, env.App, agentOptions{}).addr, "alice@laptop")
	w := c.Welcome()
	if w.Target.PID != env.App.PID || w.Target.Name != fmt.Sprintf("pid/%d", env.App.PID) {
		t.Errorf("target = %+v, want pid %d", w.Target, env.App.PID)
	}
	if w.Target.Hostname != env.App.Hostname {
		t.Errorf("hostname = %q, want the pod's %q", w.Target.Hostname, env.App.Hostname)
	}
	if w.Protocol != wire.Current || !wire.HasCapability(w.Capabilities, wire.CapSteal) {
		t.Errorf("welcome = %+v", w)
	}
}

func TestEnvComesFromTarget(t *testing.T) {
	env := envtest.New(t)
	c := connect(t, startAgent(t, env.App, agentOptions{}).addr, "alice@laptop")
	ctx := testCtx(t)

	all, err := c.Env(ctx, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if all["API_TOKEN"] != localenv.AppAPIToken || all["GREETING"] != localenv.AppGreeting {
		t.Errorf("env = %v", all)
	}
	if _, leaked := all["HOME"]; leaked {
		t.Errorf("the pod was started without HOME; the agent must not add the test's env: %v", all)
	}

	selected, err := c.Env(ctx, []string{"API_*;REDIS_*", "GREETING"}, []string{"*_TOKEN"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"REDIS_ADDR": localenv.AppRedisAddr, "GREETING": localenv.AppGreeting}
	if fmt.Sprint(selected) != fmt.Sprint(want) {
		t.Errorf("include/exclude selection = %v, want %v", selected, want)
	}

	if _, err := c.Env(ctx, []string{""}, nil); wire.CodeOf(err) != wire.CodeInvalid {
		t.Errorf("empty glob: want invalid_request, got %v", err)
	}
}

// writeInTarget creates a file inside the pod's private /etc overlay, where
// the host cannot see it.
func writeInTarget(t *testing.T, pod *localenv.Pod, path string, data []byte) string {
	t.Helper()
	full := fmt.Sprintf("/proc/%d/root%s", pod.PID, path)
	if err := os.WriteFile(full, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return full
}

func TestFilesComeFromTargetRoot(t *testing.T) {
	env := envtest.New(t)
	c := connect(t, startAgent(t, env.App, agentOptions{}).addr, "alice@laptop")
	ctx := testCtx(t)

	if _, err := os.Stat(localenv.AppConfigPath); err == nil {
		t.Fatalf("precondition: the host must not have %s", localenv.AppConfigPath)
	}
	cfg, err := c.ReadFile(ctx, localenv.AppConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	onDisk, _ := os.ReadFile(fmt.Sprintf("/proc/%d/root%s", env.App.PID, localenv.AppConfigPath))
	if len(cfg) == 0 || !bytes.Equal(cfg, onDisk) {
		t.Errorf("config = %q, want the pod's %q", cfg, onDisk)
	}

	resolv, err := c.ReadFile(ctx, "/etc/resolv.conf")
	if err != nil || !strings.Contains(string(resolv), "nameserver "+localenv.DNSIP.String()) {
		t.Errorf("resolv.conf = %q, %v; want the pod's nameserver", resolv, err)
	}

	part, err := c.ReadFileRange(ctx, localenv.AppConfigPath, 2, 5)
	if err != nil || !bytes.Equal(part.Data, onDisk[2:7]) || part.Size != int64(len(onDisk)) {
		t.Errorf("range read = %+v, %v", part, err)
	}

	st, err := c.Stat(ctx, localenv.AppConfigPath)
	if err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFREG || st.Size != int64(len(onDisk)) {
		t.Errorf("stat = %+v, %v", st, err)
	}

	_, err = c.ReadFile(ctx, "/etc/inventory/missing.json")
	if !agentclient.IsNotExist(err) || !strings.Contains(err.Error(), "missing.json") {
		t.Errorf("missing file: want not_found naming the path, got %v", err)
	}
	var we *wire.Error
	if _, err := c.ReadFile(ctx, "/etc/inventory"); !errorsAs(err, &we) || we.Errno != int(syscall.EISDIR) {
		t.Errorf("reading a directory: want EISDIR, got %v", err)
	}
	if _, err := c.ReadFile(ctx, "/dev/zero"); wire.CodeOf(err) != wire.CodeUnsupported {
		t.Errorf("reading a device: want unsupported, got %v", err)
	}
}

func TestSymlinksResolveInsideTargetRoot(t *testing.T) {
	env := envtest.New(t)
	c := connect(t, startAgent(t, env.App, agentOptions{}).addr, "alice@laptop")
	ctx := testCtx(t)

	// An absolute link must resolve against the target's root: through it
	// the target sees its own resolv.conf, not the agent's host's.
	link := fmt.Sprintf("/proc/%d/root/etc/inventory/resolver", env.App.PID)
	if err := os.Symlink("/etc/resolv.conf", link); err != nil {
		t.Fatal(err)
	}
	data, err := c.ReadFile(ctx, "/etc/inventory/resolver")
	if err != nil || !strings.Contains(string(data), localenv.DNSIP.String()) {
		t.Fatalf("read through absolute symlink = %q, %v; want the pod's resolv.conf", data, err)
	}
	target, err := c.Readlink(ctx, "/etc/inventory/resolver")
	if err != nil || target != "/etc/resolv.conf" {
		t.Errorf("readlink = %q, %v", target, err)
	}
	lst, err := c.Lstat(ctx, "/etc/inventory/resolver")
	if err != nil || lst.Mode&syscall.S_IFMT != syscall.S_IFLNK {
		t.Errorf("lstat = %+v, %v; want a symlink", lst, err)
	}
	st, err := c.Stat(ctx, "/etc/inventory/resolver")
	if err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		t.Errorf("stat = %+v, %v; want the regular file behind the link", st, err)
	}

	// ".." cannot climb out of the target's root either.
	escaped, err := c.ReadFile(ctx, "/../../../../etc/inventory/config.json")
	if err != nil || len(escaped) == 0 {
		t.Errorf("dot-dot path = %q, %v; want it clamped at the target's root", escaped, err)
	}
}

func TestReadDirAndAccess(t *testing.T) {
	env := envtest.New(t)
	c := connect(t, startAgent(t, env.App, agentOptions{}).addr, "alice@laptop")
	ctx := testCtx(t)

	writeInTarget(t, env.App, "/etc/inventory/extra.txt", []byte("x"))
	entries, err := c.ReadDir(ctx, "/etc/inventory")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name)
		if e.Name == "extra.txt" && e.Type != syscall.DT_REG {
			t.Errorf("extra.txt has type %d, want DT_REG", e.Type)
		}
	}
	if strings.Join(names, ",") != "config.json,extra.txt" {
		t.Errorf("entries = %v", names)
	}
	if err := c.Access(ctx, localenv.AppConfigPath, 4); err != nil {
		t.Errorf("R_OK on the config: %v", err)
	}
	if err := c.Access(ctx, "/etc/inventory/nope", 0); !agentclient.IsNotExist(err) {
		t.Errorf("F_OK on a missing file: want not_found, got %v", err)
	}
	// The target runs as root: execute is still denied without any x bit.
	if err := c.Access(ctx, localenv.AppConfigPath, 1); wire.CodeOf(err) != wire.CodePermissionDenied {
		t.Errorf("X_OK on a 0644 file: want permission_denied, got %v", err)
	}
}

func TestLargeFileIsReadInRanges(t *testing.T) {
	env := envtest.New(t)
	c := connect(t, startAgent(t, env.App, agentOptions{}).addr, "alice@laptop")
	ctx := testCtx(t)

	big := bytes.Repeat([]byte("0123456789abcdef"), (wire.MaxReadSize+wire.MaxReadSize/2)/16)
	writeInTarget(t, env.App, "/etc/inventory/big.bin", big)
	if _, err := c.ReadFileRange(ctx, "/etc/inventory/big.bin", 0, 0); wire.CodeOf(err) != wire.CodeTooLarge {
		t.Fatalf("whole read of a %d byte file: want too_large, got %v", len(big), err)
	}
	got, err := c.ReadFile(ctx, "/etc/inventory/big.bin")
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("ReadFile returned %d bytes (%v), want %d", len(got), err, len(big))
	}
}

// The agent runs as root but reads only what the target's user could: a
// pod running as uid 1000 cannot read a root-only Secret, and neither can
// the program that runs as that pod.
func TestReadsAsTheTargetUser(t *testing.T) {
	dir, err := os.MkdirTemp("", "remocal-uid")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	for path, mode := range map[string]os.FileMode{dir: 0o755, dir + "/private": 0o700} {
		if err := os.MkdirAll(path, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
	}
	for name, mode := range map[string]os.FileMode{"public": 0o644, "secret": 0o400} {
		if err := os.WriteFile(dir+"/"+name, []byte(name), mode); err != nil {
			t.Fatal(err)
		}
	}
	// The target: a process of uid 1000 that waits on its stdin.
	cmd := exec.Command("cat")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 1000, Gid: 1000}, Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Wait() })
	c := connect(t, startAgent(t, &localenv.Pod{Name: "uid1000", PID: cmd.Process.Pid}, agentOptions{}).addr, "alice@laptop")
	ctx := testCtx(t)

	if b, err := c.ReadFile(ctx, dir+"/public"); err != nil || string(b) != "public" {
		t.Errorf("a world-readable file: %q, %v", b, err)
	}
	_, err = c.ReadFile(ctx, dir+"/secret")
	if wire.CodeOf(err) != wire.CodePermissionDenied || !strings.Contains(err.Error(), "uid 1000") {
		t.Errorf("a root-only file read for uid 1000: want permission_denied naming the uid, got %v", err)
	}
	if _, err := c.ReadDir(ctx, dir+"/private"); wire.CodeOf(err) != wire.CodePermissionDenied {
		t.Errorf("listing a root-only directory for uid 1000: want permission_denied, got %v", err)
	}
	// stat needs no read permission, as in the kernel.
	if _, err := c.Stat(ctx, dir+"/secret"); err != nil {
		t.Errorf("stat of the root-only file: %v", err)
	}
}
