// Package seccomp is the kernel interface of the interposition layer: the
// BPF filter that selects which system calls the supervisor sees, installing
// it with a user-notification listener, and the listener's ioctls (receive,
// respond, add a file descriptor, check that a notification is still valid),
// plus access to a notifying thread's memory and file descriptors.
//
// Only x86_64 is supported. 32-bit and x32 system calls would bypass the
// system call numbers the filter checks, so the filter refuses them with
// ENOSYS instead of letting them through unseen.
package seccomp

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"
)

// Syscall numbers (x86_64) the filter can route to the supervisor.
const (
	SysOpen          = 2
	SysStat          = 4
	SysLstat         = 6
	SysAccess        = 21
	SysConnect       = 42
	SysAccept        = 43
	SysSendto        = 44
	SysRecvfrom      = 45
	SysSendmsg       = 46
	SysRecvmsg       = 47
	SysListen        = 50
	SysGetsockname   = 51
	SysGetpeername   = 52
	SysExecve        = 59
	SysUname         = 63
	SysReadlink      = 89
	SysPrctl         = 157
	SysOpenat        = 257
	SysNewfstatat    = 262
	SysReadlinkat    = 267
	SysFaccessat     = 269
	SysExecveat      = 322
	SysAccept4       = 288
	SysSendmmsg      = 307
	SysStatx         = 332
	SysIOUringSetup  = 425
	SysOpenat2       = 437
	SysFaccessat2    = 439
	auditArchX86_64  = 0xc000003e
	x32SyscallBit    = 0x40000000
	seccompDataNr    = 0
	seccompDataArch  = 4
	seccompDataArgs0 = 16
)

// ProbeOption is the prctl option the supervisor answers to prove that a
// process is already supervised. prctl rejects it with EINVAL otherwise, so
// probing is harmless without a supervisor. The value spells "RMCL".
const ProbeOption = 0x524d434c

// HandoffSendFlag marks the sendmsg that hands a new listener to the
// supervisor (package handoff, the bootstrap library): the filter lets it
// through, since no supervisor could answer it yet. It is MSG_CMSG_CLOEXEC,
// a receive flag that sendmsg ignores and programs have no reason to pass.
const HandoffSendFlag = unix.MSG_CMSG_CLOEXEC

// ProbeAnswer is what the supervisor returns for a probe.
const ProbeAnswer = 0x524d4f4b // "RMOK"

// Options select the system calls the filter notifies. Everything else runs
// untouched at the cost of a few BPF instructions.
type Options struct {
	Files    bool // open/openat/openat2, stat family, access family, readlink family
	Outgoing bool // connect, getpeername
	Incoming bool // listen
	Hostname bool // uname
	// Peer: accept, accept4, getpeername, getsockname, so that delivered
	// connections show the target's peer and address (and redirected
	// sockets the agent's). Only sessions that take incoming traffic need
	// it: Go calls getsockname on both ends of every connection, and a
	// server's every accept is notified.
	Peer bool
	// Datagrams: sendto and recvfrom with an address, sendmsg, recvmsg
	// and sendmmsg, for sockets that send to an address instead of
	// connecting (musl's resolver, TCP Fast Open); sendmsg with
	// HandoffSendFlag excepted.
	Datagrams bool
}

// AllOptions notifies everything the layer can handle.
var AllOptions = Options{Files: true, Outgoing: true, Incoming: true, Hostname: true, Peer: true, Datagrams: true}

// Notified lists the system calls the filter sends to the supervisor, with
// the BPF-side exceptions noted in Filter.
func (o Options) Notified() []int {
	nrs := []int{SysExecve, SysExecveat}
	if o.Files {
		nrs = append(nrs, SysOpen, SysOpenat, SysOpenat2, SysStat, SysLstat, SysNewfstatat, SysStatx,
			SysAccess, SysFaccessat, SysFaccessat2, SysReadlink, SysReadlinkat)
	}
	if o.Outgoing {
		nrs = append(nrs, SysConnect, SysGetpeername)
	}
	if o.Incoming {
		nrs = append(nrs, SysListen)
	}
	if o.Hostname {
		nrs = append(nrs, SysUname)
	}
	if o.Peer {
		nrs = append(nrs, SysAccept, SysAccept4, SysGetsockname)
		if !o.Outgoing {
			nrs = append(nrs, SysGetpeername)
		}
	}
	if o.Datagrams {
		nrs = append(nrs, SysSendto, SysRecvfrom, SysSendmsg, SysRecvmsg, SysSendmmsg)
	}
	return nrs
}

// Filter assembles the BPF program.
//
// Three cheap decisions are made in BPF so the supervisor never sees them:
// fstat-style calls (newfstatat and statx with AT_EMPTY_PATH) operate on an
// already open descriptor, which is local or was handed out by the
// supervisor already; sendto and recvfrom without an address act on a
// connected socket or ignore the peer; and io_uring_setup fails with ENOSYS because io_uring
// submits system calls the filter would never see (libuv, Go and others fall
// back to plain system calls).
func Filter(o Options) []unix.SockFilter {
	var a asm
	a.ld(seccompDataArch)
	a.jeq(auditArchX86_64, "", "enosys")
	a.ld(seccompDataNr)
	a.jge(x32SyscallBit, "enosys", "")
	a.jeq(SysIOUringSetup, "enosys", "")
	a.jeq(SysPrctl, "prctl", "")
	for _, nr := range o.Notified() {
		switch nr {
		case SysNewfstatat:
			a.jeq(uint32(nr), "flags_arg3", "")
		case SysStatx:
			a.jeq(uint32(nr), "flags_arg2", "")
		case SysSendto, SysRecvfrom:
			a.jeq(uint32(nr), "ptr_arg4", "")
		case SysSendmsg:
			a.jeq(uint32(nr), "handoff_flag", "")
		default:
			a.jeq(uint32(nr), "notify", "")
		}
	}
	a.ret(unix.SECCOMP_RET_ALLOW)

	a.label("prctl")
	a.ld(argLow(0))
	a.jeq(ProbeOption, "notify", "allow")

	if o.Files {
		a.label("flags_arg3")
		a.ld(argLow(3))
		a.jset(unix.AT_EMPTY_PATH, "allow", "notify")
		a.label("flags_arg2")
		a.ld(argLow(2))
		a.jset(unix.AT_EMPTY_PATH, "allow", "notify")
	}

	if o.Datagrams {
		// sendto and recvfrom without an address (send, recv, and
		// every call on a connected socket) are the program's own
		// business: only an address can name a destination to
		// redirect or a source to report.
		a.label("ptr_arg4")
		a.ld(argLow(4))
		a.jeq(0, "", "notify")
		a.ld(argLow(4) + 4)
		a.jeq(0, "allow", "notify")
		a.label("handoff_flag")
		a.ld(argLow(2))
		a.jset(HandoffSendFlag, "allow", "notify")
	}

	a.label("notify")
	a.ret(unix.SECCOMP_RET_USER_NOTIF)
	a.label("enosys")
	a.ret(unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS))
	a.label("allow")
	a.ret(unix.SECCOMP_RET_ALLOW)
	return a.assemble()
}

// argLow is the offset of the low 32 bits of argument i (little endian).
func argLow(i int) uint32 { return seccompDataArgs0 + uint32(8*i) }

// Encode serialises a program as the kernel's sock_filter array, for handing
// to a process that installs it (the bootstrap library).
func Encode(prog []unix.SockFilter) []byte {
	out := make([]byte, 0, 8*len(prog))
	for _, ins := range prog {
		out = binary.LittleEndian.AppendUint16(out, ins.Code)
		out = append(out, ins.Jt, ins.Jf)
		out = binary.LittleEndian.AppendUint32(out, ins.K)
	}
	return out
}

// Decode is the inverse of Encode.
func Decode(b []byte) ([]unix.SockFilter, error) {
	if len(b)%8 != 0 || len(b) == 0 || len(b) > 8*4096 {
		return nil, fmt.Errorf("a BPF program is a non-empty multiple of 8 bytes up to 4096 instructions, got %d bytes", len(b))
	}
	prog := make([]unix.SockFilter, len(b)/8)
	for i := range prog {
		ins := b[8*i:]
		prog[i] = unix.SockFilter{Code: binary.LittleEndian.Uint16(ins), Jt: ins[2], Jf: ins[3], K: binary.LittleEndian.Uint32(ins[4:])}
	}
	return prog, nil
}

// asm is a small classic-BPF assembler with symbolic jump targets.
type asm struct {
	ins    []unix.SockFilter
	jumps  []pendingJump
	labels map[string]int
}

type pendingJump struct {
	at     int
	jt, jf string
}

func (a *asm) ld(off uint32) {
	a.ins = append(a.ins, unix.SockFilter{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: off})
}

func (a *asm) ret(k uint32) {
	a.ins = append(a.ins, unix.SockFilter{Code: unix.BPF_RET | unix.BPF_K, K: k})
}

func (a *asm) jump(op uint16, k uint32, jt, jf string) {
	a.jumps = append(a.jumps, pendingJump{at: len(a.ins), jt: jt, jf: jf})
	a.ins = append(a.ins, unix.SockFilter{Code: unix.BPF_JMP | op | unix.BPF_K, K: k})
}

func (a *asm) jeq(k uint32, jt, jf string)  { a.jump(unix.BPF_JEQ, k, jt, jf) }
func (a *asm) jge(k uint32, jt, jf string)  { a.jump(unix.BPF_JGE, k, jt, jf) }
func (a *asm) jset(k uint32, jt, jf string) { a.jump(unix.BPF_JSET, k, jt, jf) }

func (a *asm) label(name string) {
	if a.labels == nil {
		a.labels = map[string]int{}
	}
	a.labels[name] = len(a.ins)
}

// assemble resolves labels; "" means the next instruction.
func (a *asm) assemble() []unix.SockFilter {
	off := func(from int, name string) uint8 {
		if name == "" {
			return 0
		}
		to, ok := a.labels[name]
		if !ok || to <= from || to-from-1 > 255 {
			panic(fmt.Sprintf("seccomp: bad jump from %d to %q", from, name))
		}
		return uint8(to - from - 1)
	}
	for _, j := range a.jumps {
		a.ins[j.at].Jt = off(j.at, j.jt)
		a.ins[j.at].Jf = off(j.at, j.jf)
	}
	return a.ins
}
