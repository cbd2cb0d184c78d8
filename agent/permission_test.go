package agent

import (
	"testing"

	"golang.org/x/sys/unix"

	"github.com/remocal/remocal/agent/target"
	"github.com/remocal/remocal/protocol/wire"
)

func TestPermittedFollowsAccessRules(t *testing.T) {
	file := func(mode uint32, uid, gid uint32) *wire.FileInfo {
		return &wire.FileInfo{Mode: unix.S_IFREG | mode, UID: uid, GID: gid}
	}
	dir := &wire.FileInfo{Mode: unix.S_IFDIR | 0o700, UID: 5}
	alice := target.Credentials{UID: 1000, GID: 1000, Groups: []uint32{1000, 50}}
	root := target.Credentials{}
	cases := []struct {
		name string
		info *wire.FileInfo
		cred target.Credentials
		want uint32
		ok   bool
	}{
		{"owner read", file(0o600, 1000, 0), alice, 4, true},
		{"owner lacks exec", file(0o600, 1000, 0), alice, 1, false},
		{"group read via primary gid", file(0o640, 0, 1000), alice, 4, true},
		{"group read via supplementary", file(0o640, 0, 50), alice, 4, true},
		{"group cannot write", file(0o640, 0, 50), alice, 2, false},
		{"other read", file(0o604, 0, 0), alice, 4, true},
		{"other denied", file(0o600, 0, 0), alice, 4, false},
		{"owner bits win over other", file(0o007, 1000, 0), alice, 4, false},
		{"root reads anything", file(0o000, 1000, 1000), root, 6, true},
		{"root exec needs an x bit", file(0o600, 0, 0), root, 1, false},
		{"root exec with any x", file(0o601, 0, 0), root, 1, true},
		{"root searches dirs", dir, root, 1, true},
	}
	for _, c := range cases {
		if got := permitted(c.info, c.cred, c.want); got != c.ok {
			t.Errorf("%s: permitted = %v, want %v", c.name, got, c.ok)
		}
	}
}
