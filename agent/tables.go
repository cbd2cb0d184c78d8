package agent

import (
	"strings"

	"github.com/remocal/remocal/agent/internal/redirect"
	"github.com/remocal/remocal/internal/netns"
)

// RedirectTables lists the nftables tables that remocal's agents hold in a
// network namespace. Agents own their table (the kernel removes it with the
// agent's netlink socket), so outside a running agent's lifetime there are
// none: this is how a cleanup check sees that traffic is the target's again.
func RedirectTables(ns *netns.NS) ([]string, error) {
	names, err := redirect.Tables(ns)
	if err != nil {
		return nil, err
	}
	var ours []string
	for _, n := range names {
		if strings.HasPrefix(n, redirect.TablePrefix) {
			ours = append(ours, n)
		}
	}
	return ours, nil
}
